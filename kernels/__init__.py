"""The ``triton`` backend (fused Triton kernels); importable as ``freqalign.kernels``.

``dct.py`` holds ``transform2d`` (dct2d/idct2d), ``freq_pool.py`` the pooling forward and
backward. Each is a ``torch.library.triton_op`` (``freqalign::triton_*``), so ``torch.compile``
traces into the kernels; triton_op also supplies the fake (meta) implementations, and
``freqalign.ops.autograd`` adds the backward formulas and the autocast rule (run with autocast
off, so the ops' torch fallbacks and partial-sum reductions keep their dtype). float64 inputs
run through the plain-PyTorch reference inside the same ops (see the op modules).
"""
import functools


@functools.lru_cache(maxsize=None)
def load():
    """The Triton kernels as a ``Kernels``; raises ImportError with the reason when unavailable."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"triton is not installed ({exc})") from exc
    from freqalign.backend import Kernels
    from freqalign.ops import autograd

    from . import dct, freq_pool  # noqa: F401 - importing defines the triton_op ops
    from ._utils import interpreting

    ops = autograd.register("freqalign::triton_transform2d", "freqalign::triton_pool_forward",
                            "freqalign::triton_pool_backward", fake=False)
    devices = ("cpu", "cuda") if interpreting() else ("cuda",)
    return Kernels(*ops, devices=devices)
