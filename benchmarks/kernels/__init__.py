"""Kernel benchmarks: the CPU report and suite, the attention layer."""
