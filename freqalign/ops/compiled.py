"""The ``cpu`` and ``cuda`` backends: the compiled extension ``freqalign._C``.

Its schemas are declared once with ``TORCH_LIBRARY`` (``csrc/ops.cpp``); the CPU kernels
(``csrc/cpu``) and CUDA kernels (``csrc/cuda``) register under their dispatch keys. Importing
the extension is lazy: a missing build makes these backends unavailable, never
``import freqalign`` fail.
"""
import functools

import torch

from ..backend import Kernels
from . import autograd


@functools.lru_cache(maxsize=None)
def _ops():
    import freqalign._C  # noqa: F401 - loading registers the ops

    return autograd.register("freqalign::transform2d", "freqalign::pool_forward",
                             "freqalign::pool_backward", fake=True)


def load_cpu() -> Kernels:
    return Kernels(*_ops(), devices=("cpu",))


def load_cuda() -> Kernels:
    kernels = _ops()
    if not torch._C._dispatch_has_kernel_for_dispatch_key("freqalign::pool_forward", "CUDA"):
        raise RuntimeError("freqalign._C was built without CUDA kernels "
                           "(no CUDA toolkit at build time, or FREQALIGN_BUILD_CUDA=0)")
    return Kernels(*kernels, devices=("cuda",))
