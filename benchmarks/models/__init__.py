"""Model benchmarks: training steps of whole networks."""
