"""pytest set-up for the CPU benchmarks: this checkout on sys.path, inputs and float64
references cached so each shape is built once per session."""
import functools
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this checkout even when freqalign is not installed

from lib import providers as P  # noqa: E402


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
