"""Shared code of the benchmarks (and of the tests): the kernel providers, the CPU report's
rendering, the eager FcaNet restatement and the tiny CSV dataset."""
