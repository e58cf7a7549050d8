"""pytest set-up for the CPU benchmarks: inputs and float64 references cached so each shape is
built once per session."""
import functools

import pytest

from benchmarks.lib import providers as P


@functools.lru_cache(maxsize=1)  # tests run shape by shape, so one input is live at a time
def _case(shape):
    return P.make_case(shape)


@functools.lru_cache(maxsize=4)
def _reference(op_name, shape):
    return P.OPS[op_name].reference(_case(shape))


@pytest.fixture(scope="session")
def case_for():
    """``case_for(shape)``: the benchmark input for ``shape`` (see ``providers.make_case``)."""
    return _case


@pytest.fixture(scope="session")
def reference_for():
    """``reference_for(op_name, shape)``: the float64 ground truth a provider must match."""
    return _reference
