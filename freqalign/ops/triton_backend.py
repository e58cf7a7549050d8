"""The ``triton`` backend: the Triton kernel ops of ``kernels/`` (``freqalign.kernels``) wired in.

The ops get the shared autograd and autocast rule (``freqalign.ops.autograd``; triton_op
supplies their fake kernels). float64 runs on the torch reference ops, which accumulate in
float64 as the Triton kernels cannot.
"""
import functools

import torch

from ..backend import Kernels
from . import autograd, torch_ref


def float64_on_reference(fused, reference):
    """``fused``, but float64 input runs ``reference`` (the Triton kernels accumulate in fp32)."""
    def run(x: torch.Tensor, *args):
        return (reference if x.dtype == torch.float64 else fused)(x, *args)

    return run


@functools.lru_cache(maxsize=None)
def load() -> Kernels:
    """The Triton kernels as a ``Kernels``; raises ImportError with the reason when unavailable."""
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"triton is not installed ({exc})") from exc
    from ..kernels import pool, transform2d  # noqa: F401 - importing defines the triton_op ops
    from ..kernels._utils import interpreting

    fused = autograd.register("freqalign::triton_transform2d", "freqalign::triton_pool_forward",
                              "freqalign::triton_pool_backward", fake=False)
    ref = torch_ref.load()
    routed = (float64_on_reference(f, r) for f, r in zip(fused, (ref.transform2d, ref.pool_forward,
                                                                    ref.pool_backward)))
    return Kernels(*routed, devices=("cpu", "cuda") if interpreting() else ("cuda",))
