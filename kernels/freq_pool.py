"""``freqalign::triton_pool_forward`` and ``freqalign::triton_pool_backward``: fused frequency pooling.

Forward, ``x (B, C, H, W)`` against ``filters (K, H, W)``:
- grouped: ``out[b, c] = sum_hw x[b, c, hw] * filters[c // (C / K), hw]``, a multiply-and-sum
  on the CUDA cores in fp32 (no padding waste, exact fp32 products);
- ungrouped: ``out[b, c, k] = sum_hw x[b, c, hw] * filters[k, hw]``, a ``tl.dot`` of the
  ``(BLOCK_C, BLOCK_HW)`` x tile with the ``(BLOCK_HW, BLOCK_K)`` filter tile (K padded to 16).
x is read once, in place, with its own strides: a program owns ``BLOCK_C`` consecutive
channels of one image, which are contiguous in memory for channels_last and rows of H*W
contiguous values for NCHW. When ``B * C / BLOCK_C`` programs cannot fill the GPU (large H*W,
few channels), H*W is split over ``SPLIT`` programs that write fp32 partial sums, added by one
small torch sum (deterministic; no atomics).

Backward, the adjoint, writes ``(B, C, H, W)`` contiguous: grouped ``g[b, c] * filters[k(c)]``,
ungrouped the dot ``g (BLOCK_C, BLOCK_K) @ filters (BLOCK_K, BLOCK_HW)``. Never a
(B, C, K, H, W) intermediate.

Block rule (tile of about 4096 elements): ``BLOCK_HW = min(next_pow2(H*W), 1024)`` and
``BLOCK_C = 4096 // BLOCK_HW`` for NCHW rows; for channels_last ``BLOCK_C = min(next_pow2(C), 64)``
(256 B contiguous per fp32 row) and ``BLOCK_HW = 4096 // BLOCK_C``; every tl.dot dimension at
least 16. Inputs of any floating dtype accumulate in fp32; the ungrouped dots use ``tf32x3``
(``tf32`` when torch's float32 matmul precision allows it) for fp32, and ``tf32`` for fp16/bf16,
whose values are exact in tf32. float64 goes to the plain-PyTorch reference (cuBLAS).
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._utils import MIN_DOT, TILE, fp32_precision, pow2, target_programs

MAX_BLOCK_HW = 1024
MAX_BLOCK_K = 64
CL_BLOCK_C = 64


@triton.jit
def _hw_offsets(hw, W: tl.constexpr, sh, sw, MERGED: tl.constexpr):
    """Element offsets of flattened positions ``hw = h * W + w``; one multiply when (H, W) merge."""
    if MERGED:
        return hw.to(tl.int64) * sw
    return (hw // W).to(tl.int64) * sh + (hw % W).to(tl.int64) * sw


@triton.jit
def _pool_forward_kernel(x_ptr, f_ptr, out_ptr, C, K, K_BLOCKS, GROUP, span, sxb, sxc, sxh, sxw, sob, soc, sos,
                         H: tl.constexpr, W: tl.constexpr, MERGED: tl.constexpr, GROUPED: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_K: tl.constexpr,
                         PRECISION: tl.constexpr):
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    split = tl.program_id(2) // K_BLOCKS
    k = (tl.program_id(2) % K_BLOCKS) * BLOCK_K + tl.arange(0, BLOCK_K)
    live_c = c < C
    row = b.to(tl.int64) * sxb + c.to(tl.int64) * sxc
    start = split * span
    stop = tl.minimum(start + span, H * W)
    if GROUPED:
        acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
        bank = (c // GROUP) * (H * W)
    else:
        acc = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
    for first in range(start, stop, BLOCK_HW):
        hw = first + tl.arange(0, BLOCK_HW)
        live_hw = hw < stop
        x = tl.load(x_ptr + row[:, None] + _hw_offsets(hw, W, sxh, sxw, MERGED)[None, :],
                    mask=live_c[:, None] & live_hw[None, :], other=0.0).to(tl.float32)
        if GROUPED:
            f = tl.load(f_ptr + bank[:, None] + hw[None, :], mask=live_c[:, None] & live_hw[None, :], other=0.0)
            acc += x * f.to(tl.float32)
        else:
            ft = tl.load(f_ptr + k[None, :] * (H * W) + hw[:, None],
                         mask=live_hw[:, None] & (k < K)[None, :], other=0.0)
            acc = tl.dot(x, ft.to(tl.float32), acc, input_precision=PRECISION)
    out = out_ptr + split.to(tl.int64) * sos + b.to(tl.int64) * sob + c.to(tl.int64) * soc
    if GROUPED:
        tl.store(out, tl.sum(acc, axis=1).to(out_ptr.dtype.element_ty), mask=live_c)
    else:
        tl.store(out[:, None] + k[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=live_c[:, None] & (k < K)[None, :])


@triton.jit
def _pool_backward_kernel(g_ptr, f_ptr, out_ptr, C, K, GROUP, sgb, sgc, sgk,
                          HW: tl.constexpr, GROUPED: tl.constexpr, BLOCK_C: tl.constexpr,
                          BLOCK_HW: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    live_c = c < C
    live_hw = hw < HW
    mask = live_c[:, None] & live_hw[None, :]
    grad = g_ptr + b.to(tl.int64) * sgb + c.to(tl.int64) * sgc
    if GROUPED:
        g = tl.load(grad, mask=live_c, other=0.0).to(tl.float32)
        f = tl.load(f_ptr + ((c // GROUP) * HW)[:, None] + hw[None, :], mask=mask, other=0.0)
        y = g[:, None] * f.to(tl.float32)
    else:
        y = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
        for first in range(0, K, BLOCK_K):
            k = first + tl.arange(0, BLOCK_K)
            g = tl.load(grad[:, None] + k[None, :].to(tl.int64) * sgk, mask=live_c[:, None] & (k < K)[None, :],
                        other=0.0)
            f = tl.load(f_ptr + k[:, None] * HW + hw[None, :], mask=(k < K)[:, None] & live_hw[None, :], other=0.0)
            y = tl.dot(g.to(tl.float32), f.to(tl.float32), y, input_precision=PRECISION)
    out = (b.to(tl.int64) * C + c.to(tl.int64))[:, None] * HW + hw[None, :]
    tl.store(out_ptr + out, y.to(out_ptr.dtype.element_ty), mask=mask)


def _precision(dtype: torch.dtype) -> str:
    return fp32_precision() if dtype == torch.float32 else "tf32"


def _forward_blocks(x: torch.Tensor, grouped: bool, k: int):
    """(BLOCK_C, BLOCK_HW, BLOCK_K, K_BLOCKS, SPLIT, span) by the rule in the module docstring."""
    batch, channels, height, width = x.shape
    hw = height * width
    lo = 1 if grouped else MIN_DOT
    block_k = 1 if grouped else min(pow2(k, MIN_DOT), MAX_BLOCK_K)
    if x.stride(1) == 1 and channels > 1:  # channels_last: channels are the contiguous axis
        block_c = max(min(pow2(channels), CL_BLOCK_C), lo)
        block_hw = max(min(TILE // block_c, pow2(hw)), lo)
    else:
        block_hw = max(min(pow2(hw), MAX_BLOCK_HW), lo)
        block_c = max(min(TILE // block_hw, pow2(channels)), lo)
    k_blocks = 1 if grouped else triton.cdiv(k, block_k)
    programs = batch * triton.cdiv(channels, block_c) * k_blocks
    split = max(1, min(triton.cdiv(target_programs(x.device), programs), triton.cdiv(hw, block_hw)))
    span = triton.cdiv(triton.cdiv(hw, split), block_hw) * block_hw
    return block_c, block_hw, block_k, k_blocks, triton.cdiv(hw, span), span


def _reference_forward(x, filters, grouped):
    from freqalign.ops.torch_ref import pool_forward

    return pool_forward(x, filters, grouped)


def _reference_backward(grad, filters, grouped):
    from freqalign.ops.torch_ref import pool_backward

    return pool_backward(grad, filters, grouped)


@triton_op("freqalign::triton_pool_forward", mutates_args=())
def pool_forward(x: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    if x.dtype == torch.float64:
        return _reference_forward(x, filters, grouped)
    batch, channels, height, width = x.shape
    k = filters.shape[0]
    shape = (batch, channels) if grouped else (batch, channels, k)
    if x.numel() == 0:
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    filters = filters.contiguous()
    block_c, block_hw, block_k, k_blocks, split, span = _forward_blocks(x, grouped, k)
    if split == 1:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
    else:
        out = torch.empty((split,) + shape, dtype=torch.float32, device=x.device)
    so = out.stride()[-len(shape):]
    grid = (batch, triton.cdiv(channels, block_c), split * k_blocks)
    wrap_triton(_pool_forward_kernel)[grid](
        x, filters, out, channels, k, k_blocks, channels // k if grouped else 1, span, *x.stride(),
        so[0], so[1], out.stride(0) if split > 1 else 0,
        H=height, W=width, MERGED=x.stride(2) == width * x.stride(3), GROUPED=grouped,
        BLOCK_C=block_c, BLOCK_HW=block_hw, BLOCK_K=block_k, PRECISION=_precision(x.dtype), num_warps=4)
    return out if split == 1 else out.sum(0).to(x.dtype)


@triton_op("freqalign::triton_pool_backward", mutates_args=())
def pool_backward(grad: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    if grad.dtype == torch.float64:
        return _reference_backward(grad, filters, grouped)
    k, height, width = filters.shape
    batch, channels = grad.shape[0], grad.shape[1]
    hw = height * width
    out = torch.empty((batch, channels, height, width), dtype=grad.dtype, device=grad.device)
    if out.numel() == 0:
        return out
    filters = filters.contiguous()
    lo = 1 if grouped else MIN_DOT
    block_hw = max(min(pow2(hw), MAX_BLOCK_HW), lo)
    block_c = max(min(TILE // block_hw, pow2(channels)), lo)
    block_k = 1 if grouped else min(pow2(k, MIN_DOT), MAX_BLOCK_K)
    sgk = 0 if grouped else grad.stride(2)
    grid = (batch, triton.cdiv(channels, block_c), triton.cdiv(hw, block_hw))
    wrap_triton(_pool_backward_kernel)[grid](
        grad, filters, out, channels, k, channels // k if grouped else 1, grad.stride(0), grad.stride(1), sgk,
        HW=hw, GROUPED=grouped, BLOCK_C=block_c, BLOCK_HW=block_hw, BLOCK_K=block_k,
        PRECISION=_precision(grad.dtype), num_warps=4)
    return out
