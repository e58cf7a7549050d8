"""Input-pipeline benchmarks."""
