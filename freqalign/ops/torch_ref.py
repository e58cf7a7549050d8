"""The ``torch`` backend: plain-PyTorch reference kernels, also the fallback.

Separable matmul for the DCT and one (H*W, K) matmul for pooling, accumulated in float32
(float64 for float64 input). Autograd comes from torch itself.
"""
import torch

from ..backend import Kernels


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


def load() -> Kernels:
    return Kernels(transform2d, pool_forward, pool_backward, devices=("cpu", "cuda"))
