"""Shared code of the benchmark scripts: the providers and the CPU report's rendering."""
