"""Measurements of freqalign, by kind: kernels, models, data, method, gpu; shared code in lib,
results in results/. Run the scripts as modules from the repository root, e.g.
``python -m benchmarks.kernels.report_cpu`` (benchmarks/README.md)."""
