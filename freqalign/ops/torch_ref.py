"""The ``torch`` backend: plain-PyTorch reference kernels, also the fallback.

Separable matmul for the DCT and one (H*W, K) matmul for pooling, accumulated in float32
(float64 for float64 input). The kernels are registered as ops (``freqalign::torch_transform2d``
...) and wired like every other backend's by ``freqalign.ops.autograd``: the same fake kernels,
the same adjoint formulas and the same autocast rule (run with autocast off, so autocast cannot
lower an fp32 computation; docs/design.md section 2). The plain functions stay callable as the
float64 reference of the tests and benchmarks.
"""
import functools

import torch

from ..backend import Kernels
from . import autograd


def transform2d(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return (left @ x.to(left.dtype) @ right.transpose(0, 1)).to(x.dtype).contiguous()


def pool_forward(x: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    batch, channels, height, width = x.shape
    k = filters.shape[0]
    flat = x.to(filters.dtype).reshape(batch, channels, height * width)
    bank = filters.reshape(k, height * width)
    if grouped:
        grouped_x = flat.reshape(batch, k, channels // k, height * width)
        out = (grouped_x @ bank.unsqueeze(2)).reshape(batch, channels)
    else:
        out = flat @ bank.transpose(0, 1)
    return out.to(x.dtype)


def pool_backward(grad: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    k, height, width = filters.shape
    batch, channels = grad.shape[:2]
    bank = filters.reshape(k, height * width)
    g = grad.to(filters.dtype)
    if grouped:
        out = g.reshape(batch, k, channels // k, 1) * bank.reshape(1, k, 1, height * width)
    else:
        out = g @ bank
    return out.reshape(batch, channels, height, width).to(grad.dtype)


@functools.lru_cache(maxsize=None)
def _ops():
    for name, kernel in (("torch_transform2d", transform2d), ("torch_pool_forward", pool_forward),
                         ("torch_pool_backward", pool_backward)):
        torch.library.custom_op(f"freqalign::{name}", kernel, mutates_args=())
    return autograd.register("freqalign::torch_transform2d", "freqalign::torch_pool_forward",
                             "freqalign::torch_pool_backward", fake=True)


def load() -> Kernels:
    return Kernels(*_ops(), devices=("cpu", "cuda"))
