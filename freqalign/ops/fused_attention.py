"""``ms_attention``: FcaNet's multi-spectral channel attention as one fused op (docs/design.md
section 2, "Attention op").

``y = x * sigmoid(w2 @ relu(w1 @ pool(x)))`` with ``pool`` grouped DCT pooling against
``filters (K, H, W)``. Each backend has two kernel ops with one contract:

- ``ms_attention(x, filters, w1, w2) -> (y, pooled, hidden, att)``: one pooling pass over x,
  the two FC layers and the sigmoid on (B, C) tensors (accumulation dtype), one scaling pass;
- ``ms_attention_backward(grad, x, filters, w1, w2, pooled, hidden, att) -> (grad_x, grad_w1,
  grad_w2)``: one pass ``s = sum_hw grad * x`` (all the FC backward needs), the FC backward on
  (B, C), one pass ``grad_x = grad * att + d_pooled * filter`` (scale term plus pooling adjoint).

Autograd saves x and the (B, C) / (B, hidden) tensors, never a (B, C, H, W) intermediate.
y and grad_x are channels_last when x is (else contiguous). First-order gradients only.
Families: the compiled extension (``freqalign::ms_attention``, csrc/cpu and csrc/cuda), the
Triton passes (``freqalign::triton_ms_attention``, kernels/attention.py; float64 on the torch
ops) and plain PyTorch (``freqalign::torch_ms_attention``, the reference).
"""
import functools
from typing import Tuple

import torch
from torch import Tensor

from .. import backend
from ..basis import accumulation_dtype, grid_filters, grid_to_index, pool_filters
from . import autograd, torch_ref, triton_backend
from .validate import check_float_tensor, parse_freqs


def layout(x: torch.Tensor) -> torch.memory_format:
    """The memory format of y and grad_x: channels_last when x is exactly that, else contiguous."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def fc(pooled, w1, w2):
    """hidden = relu(pooled @ w1.T), att = sigmoid(hidden @ w2.T), in pooled's dtype."""
    hidden = torch.relu(pooled @ w1.to(pooled.dtype).T)
    return hidden, torch.sigmoid(hidden @ w2.to(pooled.dtype).T)


def fc_backward(s, pooled, hidden, att, w1, w2):
    """(grad_pooled, grad_w1, grad_w2) from ``s = sum_hw grad * x``."""
    logit = s * att * (1 - att)
    grad_w2 = logit.T @ hidden
    grad_hidden = (logit @ w2.to(s.dtype)) * (hidden > 0)
    return grad_hidden @ w1.to(s.dtype), (grad_hidden.T @ pooled).to(w1.dtype), grad_w2.to(w2.dtype)


def composite(pool, scale, reduce):
    """The two kernel ops built from a family's passes: ``pool(x, filters)`` (grouped, (B, C)),
    ``scale(inp, a, d, filters)`` (``a * inp + d * filter``; d may be None) and
    ``reduce(grad, x)`` (``sum_hw grad * x``, accumulation dtype), each on x's layout."""
    def forward(x: Tensor, filters: Tensor, w1: Tensor,
                w2: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        xw = x.contiguous(memory_format=layout(x))
        pooled = pool(xw, filters).to(filters.dtype)
        hidden, att = fc(pooled, w1, w2)
        return scale(xw, att, None, filters), pooled, hidden, att

    def backward(grad: Tensor, x: Tensor, filters: Tensor, w1: Tensor, w2: Tensor, pooled: Tensor,
                 hidden: Tensor, att: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        fmt = layout(x)
        xw, gw = x.contiguous(memory_format=fmt), grad.to(x.dtype).contiguous(memory_format=fmt)
        grad_pooled, grad_w1, grad_w2 = fc_backward(reduce(gw, xw), pooled, hidden, att, w1, w2)
        return scale(gw, att, grad_pooled, filters), grad_w1, grad_w2

    return forward, backward


def _torch_scale(inp, a, d, filters):
    out = inp.to(a.dtype) * a[:, :, None, None]
    if d is not None:
        out = out + torch_ref.pool_backward(d, filters, True)
    return out.to(inp.dtype).contiguous(memory_format=layout(inp))


def _torch_reduce(grad, x):
    acc = accumulation_dtype(x.dtype)
    return (grad.to(acc) * x.to(acc)).sum((2, 3))


reference_forward, reference_backward = composite(lambda x, f: torch_ref.pool_forward(x, f, True),
                                                  _torch_scale, _torch_reduce)


def _forward_fake(x, filters, w1, w2):
    batch, channels = x.shape[:2]
    small = dict(dtype=filters.dtype, device=x.device)
    return (torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=layout(x)),
            x.new_empty((batch, channels), **small), x.new_empty((batch, w1.shape[0]), **small),
            x.new_empty((batch, channels), **small))


def _backward_fake(grad, x, filters, w1, w2, pooled, hidden, att):
    return (torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=layout(x)),
            torch.empty(w1.shape, dtype=w1.dtype, device=w1.device),
            torch.empty(w2.shape, dtype=w2.dtype, device=w2.device))


def register(forward_name: str, backward_name: str, *, fake: bool):
    """Register autograd, the autocast rule (and fake kernels when ``fake``) of a family's pair."""
    ops = torch.ops.freqalign
    forward = getattr(ops, forward_name.split("::")[1])
    backward = getattr(ops, backward_name.split("::")[1])
    if fake:
        torch.library.register_fake(forward_name)(_forward_fake)
        torch.library.register_fake(backward_name)(_backward_fake)

    def setup_context(ctx, inputs, output):
        x, ctx.filters, w1, w2 = inputs
        ctx.save_for_backward(x, w1, w2, *output[1:])

    def backward_rule(ctx, grad, *unused):
        x, w1, w2, pooled, hidden, att = ctx.saved_tensors
        grad_x, grad_w1, grad_w2 = backward(grad, x, ctx.filters, w1, w2, pooled, hidden, att)
        return grad_x, None, grad_w1, grad_w2

    torch.library.register_autograd(forward_name, backward_rule, setup_context=setup_context)
    for name in (forward_name, backward_name):
        autograd.register_autocast_rule(name)
    return forward, backward


def _define(prefix: str, forward, backward):
    """Define a family's pair from Python functions (schemas from their annotations)."""
    torch.library.custom_op(f"freqalign::{prefix}ms_attention", forward, mutates_args=())
    torch.library.custom_op(f"freqalign::{prefix}ms_attention_backward", backward, mutates_args=())
    return register(f"freqalign::{prefix}ms_attention", f"freqalign::{prefix}ms_attention_backward", fake=True)


# Each backend's attention loader (``register_backend(..., attention=...)`` in ``freqalign.ops``):
# it registers its pair on the backend's first load, outside compiled regions (torch.compile
# cannot trace a registration), and returns (forward, backward).
@functools.lru_cache(maxsize=None)
def torch_ops():
    return _define("torch_", reference_forward, reference_backward)


@functools.lru_cache(maxsize=None)
def compiled_ops():
    import freqalign._C  # noqa: F401 - loading registers the ops

    return register("freqalign::ms_attention", "freqalign::ms_attention_backward", fake=True)


@functools.lru_cache(maxsize=None)
def triton_ops():
    """The Triton passes' pair; float64 runs on the torch pair (as the triton backend's kernels)."""
    from ..kernels import attention

    fused = _define("triton_", *composite(attention.pool, attention.scale, attention.reduce))
    return tuple(triton_backend.float64_on_reference(f, r) for f, r in zip(fused, torch_ops()))


def kernel_op(x: torch.Tensor):
    """The forward kernel op of the backend that runs ``x``."""
    return backend.attention(backend.select(x.device))[0]


def ms_attention(x: torch.Tensor, freqs, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """FcaNet's attention ``x * sigmoid(w2 @ relu(w1 @ freq_pool(x, freqs)))``, fused.

    ``x (B, C, H, W)``; ``freqs``: K feature-size (u, v) indices as for :func:`freq_pool`
    (grouped, ``norm="ortho"``; K must divide C); ``w1 (hidden, C)`` and ``w2 (C, hidden)``
    are bias-free FC weights (``nn.Linear.weight``).
    """
    check_float_tensor(x, "x", min_dim=4, exact_dim=4)
    for name, w in (("w1", w1), ("w2", w2)):
        check_float_tensor(w, name, min_dim=2, exact_dim=None)
        if w.dim() != 2:
            raise ValueError(f"{name} must be a 2-D weight matrix, got shape {tuple(w.shape)}")
    channels = x.shape[1]
    if w1.shape[1] != channels or tuple(w2.shape) != (channels, w1.shape[0]):
        raise ValueError(f"w1 must be (hidden, C) and w2 (C, hidden) for C={channels}, got "
                         f"{tuple(w1.shape)} and {tuple(w2.shape)}")
    pairs = parse_freqs(freqs, x.shape[-2], x.shape[-1])
    if channels % len(pairs) != 0:
        raise ValueError(f"ms_attention splits the C={channels} channels of x into K={len(pairs)} equal "
                         f"groups (one per frequency), but {channels} % {len(pairs)} != 0")
    filters = pool_filters(pairs, x.shape[-2], x.shape[-1], "ortho", accumulation_dtype(x.dtype), x.device)
    if backend.capturing():
        return plain(x, filters, w1, w2)
    return kernel_op(x)(x, filters, w1, w2)[0]


def plain(x: torch.Tensor, filters: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The op in standard torch ops, for captured graphs: pool, the FC layers, scale."""
    pooled = torch_ref.pool_forward(x.to(filters.dtype), filters, True)
    _, att = fc(pooled, w1, w2)
    return (x.to(att.dtype) * att[:, :, None, None]).to(x.dtype)


def grid_attention(x: torch.Tensor, freqs, grid: int, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """:func:`ms_attention` at grid frequencies, as :func:`freqalign.ops.pool.grid_pool` pools:
    the fused op in eager and compiled code, the plain formulation with bases built from the
    traced size while a graph is captured for export."""
    if not backend.capturing():
        return ms_attention(x, grid_to_index(freqs, x.shape[-2], x.shape[-1], grid), w1, w2)
    filters = grid_filters(freqs, grid, x.shape[-2], x.shape[-1], "ortho", accumulation_dtype(x.dtype), x.device)
    return plain(x, filters, w1, w2)


__all__ = ["ms_attention"]
