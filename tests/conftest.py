"""Shared fixtures: the backends that can run on CPU tensors here, and seeded global RNGs."""
import os
import random

import numpy as np
import pytest
import torch

import freqalign
from freqalign import backend


@pytest.fixture(autouse=True)
def _seeded_global_rngs():
    """Every test starts from the same global RNG states, whatever ran before it (tests that
    draw their data use explicit generators; this covers library code that draws globally)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def _cpu_backends():
    names = ["torch"]
    kernels = backend.load("cpu")
    if kernels is not None:
        names.append("cpu")
    elif os.environ.get("FREQALIGN_REQUIRE_EXT") == "1":
        raise RuntimeError(f"FREQALIGN_REQUIRE_EXT=1 but the cpu backend is unavailable: "
                           f"{freqalign.backends()['cpu']}")
    return names


CPU_BACKENDS = _cpu_backends()


@pytest.fixture(params=CPU_BACKENDS)
def backend_name(request):
    """Run the test once per backend that runs on CPU tensors (torch, and cpu when built)."""
    with freqalign.use_backend(request.param):
        yield request.param
