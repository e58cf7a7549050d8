"""Fake (meta) kernels, autograd and the autocast rule for a backend's three registered kernel ops.

Every backend's ops share one contract (see ``freqalign.backend``): the compiled extension's
(``freqalign::transform2d`` ...), the Triton backend's (``freqalign::triton_transform2d`` ...)
and the torch reference's (``freqalign::torch_transform2d`` ...), so one function wires all
three and the adjoint formulas exist once. Each backward is another op of the same family, so higher-order
gradients work too: transform2d's adjoint is transform2d with transposed matrices, and
pool_forward and pool_backward are each other's adjoint.

Autocast (docs/design.md section 2): each op runs with autocast off, so a kernel's own internal torch
calls (the CPU kernel's BLAS matmul, the reference fallbacks) are never lowered to fp16/bf16
and every op returns the dtype its fake kernel promises: fp32 in, fp32 out; fp16/bf16 in, the
same dtype out with fp32 accumulation.
"""
import torch

_AUTOCAST_KEYS = {"AutocastCPU": "cpu", "AutocastCUDA": "cuda"}
_library = torch.library.Library("freqalign", "FRAGMENT")  # keeps the autocast rules registered


def _transform2d_fake(x, left, right):
    return x.new_empty(x.shape)


def _pool_forward_fake(x, filters, grouped):
    batch, channels = x.shape[:2]
    shape = (batch, channels) if grouped else (batch, channels, filters.shape[0])
    return x.new_empty(shape)


def _pool_backward_fake(grad, filters, grouped):
    return grad.new_empty((grad.shape[0], grad.shape[1], filters.shape[1], filters.shape[2]))


def _without_autocast(op, device_type: str):
    def kernel(*args):
        with torch.autocast(device_type, enabled=False):
            return op(*args)

    return kernel


def register_autocast_rule(name: str) -> None:
    """Under autocast (CPU and CUDA), run op ``name`` (``freqalign::...``) unchanged with autocast
    off: no casts, the kernels choose precision. ``torch.library.register_autocast`` cannot say
    this: it casts every floating input to one dtype, so fp32 input would run in fp16."""
    short = name.split("::")[1]
    op = getattr(torch.ops.freqalign, short)
    for key, device_type in _AUTOCAST_KEYS.items():
        _library.impl(short, _without_autocast(op, device_type), key)


def register(transform2d_name: str, pool_forward_name: str, pool_backward_name: str, *, fake: bool):
    """Register autograd, the autocast rule (and, for ops defined outside Python, fake kernels) by
    qualified name."""
    ops = torch.ops.freqalign
    transform2d = getattr(ops, transform2d_name.split("::")[1])
    pool_forward = getattr(ops, pool_forward_name.split("::")[1])
    pool_backward = getattr(ops, pool_backward_name.split("::")[1])

    if fake:
        torch.library.register_fake(transform2d_name)(_transform2d_fake)
        torch.library.register_fake(pool_forward_name)(_pool_forward_fake)
        torch.library.register_fake(pool_backward_name)(_pool_backward_fake)

    def save_matrices(ctx, inputs, output):
        ctx.left, ctx.right = inputs[1], inputs[2]

    def transform2d_backward(ctx, grad):
        left_t = ctx.left.transpose(0, 1).contiguous()
        right_t = ctx.right.transpose(0, 1).contiguous()
        return transform2d(grad.contiguous(), left_t, right_t), None, None

    def save_filters(ctx, inputs, output):
        ctx.filters, ctx.grouped = inputs[1], inputs[2]
        ctx.dtype = inputs[0].dtype

    def pool_forward_backward(ctx, grad):
        return pool_backward(grad.contiguous().to(ctx.dtype), ctx.filters, ctx.grouped), None, None

    def pool_backward_backward(ctx, grad):
        return pool_forward(grad.to(ctx.dtype), ctx.filters, ctx.grouped), None, None

    torch.library.register_autograd(transform2d_name, transform2d_backward, setup_context=save_matrices)
    torch.library.register_autograd(pool_forward_name, pool_forward_backward, setup_context=save_filters)
    torch.library.register_autograd(pool_backward_name, pool_backward_backward, setup_context=save_filters)
    for name in (transform2d_name, pool_forward_name, pool_backward_name):
        register_autocast_rule(name)
    return transform2d, pool_forward, pool_backward
