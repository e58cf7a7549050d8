"""The ``cpu`` and ``cuda`` backends: the compiled extension ``freqalign._C``.

Its schemas are declared once with ``TORCH_LIBRARY`` (``csrc/ops.cpp``); the CPU kernels
(``csrc/cpu``) and CUDA kernels (``csrc/cuda``) register under their dispatch keys. Importing
the extension is lazy: a missing build makes these backends unavailable, never
``import freqalign`` fail. A build for another torch is not loaded at all (its symbols may not
resolve, or resolve to other layouts): one warning, and the torch backend runs instead.
"""
import functools
import importlib.util
import mmap
from typing import Optional

import torch

from .. import backend
from ..backend import Kernels
from . import autograd

MARKER = b"freqalign-built-for-torch="  # csrc/ops.cpp embeds it, then the version and ";"


def built_for(path: str) -> Optional[str]:
    """The torch version the extension file at ``path`` was built against, read from its bytes
    without loading it; None when it carries no marker."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = data.find(MARKER)
        if start < 0:
            return None
        start += len(MARKER)
        return data[start:data.find(b";", start)].decode()


def _check_torch_version(path: str) -> None:
    """Raise ImportError (after one warning) when the extension was built for another torch."""
    built, running = built_for(path), torch.__version__.split("+")[0]
    if built != running:
        reason = (f"freqalign._C was built for torch {built or '(unknown)'}, but torch {running} is "
                  f"running; rebuild it: pip install --no-build-isolation --force-reinstall freqalign")
        backend.warn_fallback("cpu", reason)
        raise ImportError(reason)


@functools.lru_cache(maxsize=None)
def _ops():
    spec = importlib.util.find_spec("freqalign._C")
    if spec is None:
        raise ImportError("freqalign._C is not built (FREQALIGN_BUILD_EXT=0, or an install without a compiler)")
    _check_torch_version(spec.origin)
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
