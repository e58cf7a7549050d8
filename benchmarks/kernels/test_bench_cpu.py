"""pytest-benchmark suite: every provider of every op at every shape, grouped by (op, shape).

    python -m pytest benchmarks/kernels --benchmark-only   # time them (overrides --benchmark-skip)
    python -m pytest benchmarks/kernels -o addopts="" --benchmark-disable   # run each once: a check

The normal test run skips these (``--benchmark-skip`` in pyproject's addopts). Before timing,
each provider's output is checked against a float64 reference, so a fast but wrong provider
fails instead of winning. For the ratio report use ``report_cpu.py``.
"""
import pytest

from benchmarks.lib import providers as P
from benchmarks.lib.report_text import shape_key

TOLERANCE = 1e-4  # max |out - ref| / max |ref| for fp32 providers

CASES = [pytest.param(op.name, shape, provider, id=f"{op.name}-{shape_key(shape)}-{provider.name}")
         for shape in P.SHAPES for op in P.OPS.values() for provider in op.providers]


@pytest.mark.parametrize("op_name, shape, provider", CASES)
def test_cpu(benchmark, case_for, reference_for, op_name, shape, provider):
    case = case_for(shape)
    try:
        fn = provider.build(case)
    except P.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{op_name} {shape_key(shape)}"
    benchmark.extra_info.update(provider=provider.label, kind=provider.kind)
    if provider.kind != "floor":
        error = P.max_relative_error(fn(), reference_for(op_name, shape))
        assert error <= TOLERANCE, f"{provider.label} disagrees with the float64 reference: {error:.2e}"
    benchmark(fn)
