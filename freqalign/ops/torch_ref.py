"""The ``torch`` backend: plain-PyTorch reference kernels, also the fallback.

Separable matmul for the DCT and one (H*W, K) matmul for pooling, accumulated in float32
(float64 for float64 input). Each kernel runs with autocast off, so that autocast cannot lower
an fp32 computation (DESIGN section 2): the explicit casts to and from the accumulation dtype
set the precision. The backend's autograd uses the same adjoint formulas as the registered ops
(``freqalign.ops.autograd``), so its gradients are autocast-proof too, even when ``backward()``
itself runs inside an autocast region (where torch's own matmul backward would be lowered).
"""
import functools

import torch

from ..backend import Kernels


def _autocast_off(kernel):
    @functools.wraps(kernel)
    def run(x: torch.Tensor, *args):
        with torch.autocast(x.device.type, enabled=False):
            return kernel(x, *args)

    return run


@_autocast_off
def transform2d(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    return (left @ x.to(left.dtype) @ right.transpose(0, 1)).to(x.dtype).contiguous()


@_autocast_off
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


@_autocast_off
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


class _Transform2d(torch.autograd.Function):
    @staticmethod
    def forward(x, left, right):
        return transform2d(x, left, right)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.left, ctx.right = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx, grad):
        left_t, right_t = ctx.left.transpose(0, 1), ctx.right.transpose(0, 1)
        return _Transform2d.apply(grad, left_t, right_t), None, None


class _PoolForward(torch.autograd.Function):
    @staticmethod
    def forward(x, filters, grouped):
        return pool_forward(x, filters, grouped)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.filters, ctx.grouped, ctx.dtype = inputs[1], inputs[2], inputs[0].dtype

    @staticmethod
    def backward(ctx, grad):
        return _PoolBackward.apply(grad.to(ctx.dtype), ctx.filters, ctx.grouped), None, None


class _PoolBackward(torch.autograd.Function):
    @staticmethod
    def forward(grad, filters, grouped):
        return pool_backward(grad, filters, grouped)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.filters, ctx.grouped, ctx.dtype = inputs[1], inputs[2], inputs[0].dtype

    @staticmethod
    def backward(ctx, grad):
        return _PoolForward.apply(grad.to(ctx.dtype), ctx.filters, ctx.grouped), None, None


def load() -> Kernels:
    return Kernels(_Transform2d.apply, _PoolForward.apply, _PoolBackward.apply, devices=("cpu", "cuda"))
