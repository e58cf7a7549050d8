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
(256 B contiguous per fp32 row) and ``BLOCK_HW = 4096 // BLOCK_C``. The ungrouped tl.dot tiles
keep every side in [16, 64] (``BLOCK_K = min(next_pow2(K), 64)``) and 2 pipeline stages, so their
shared memory stays at or under 80 KB in fp32 (checked by compiling for sm_90 in the tests).

Precision: inputs of any floating dtype accumulate in fp32; the ungrouped dots use ``tf32x3``
(``tf32`` when torch's float32 matmul precision allows it) for fp32, and ``tf32`` for fp16/bf16,
whose values are exact in tf32. float64 goes to the plain-PyTorch reference (cuBLAS).
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._utils import MIN_DOT, TILE, fp32_precision, pow2, target_programs

MAX_BLOCK_HW = 1024  # grouped (multiply-and-sum) tiles
MAX_DOT_BLOCK = 64  # every side of an ungrouped tl.dot tile: keeps shared memory <= 80 KB in fp32
MAX_BLOCK_K = 64
CL_BLOCK_C = 64
DOT_STAGES = 2  # software-pipelining depth of the ungrouped dot loops (3 would need up to 112 KB)


@triton.jit
def _hw_offsets(hw, W, sh, sw, MERGED: tl.constexpr):
    """Element offsets of flattened positions ``hw = h * W + w``; one multiply when (H, W) merge."""
    if MERGED:
        return hw.to(tl.int64) * sw
    return (hw // W).to(tl.int64) * sh + (hw % W).to(tl.int64) * sw


@triton.jit
def _pool_forward_kernel(x_ptr, f_ptr, out_ptr, C, K, K_BLOCKS, GROUP, span, sxb, sxc, sxh, sxw, sob, soc, sos,
                         HW, W, MERGED: tl.constexpr, GROUPED: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_K: tl.constexpr,
                         PRECISION: tl.constexpr):
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    split = tl.program_id(2) // K_BLOCKS
    k = (tl.program_id(2) % K_BLOCKS) * BLOCK_K + tl.arange(0, BLOCK_K)
    live_c = c < C
    row = b.to(tl.int64) * sxb + c.to(tl.int64) * sxc
    start = split * span
    stop = tl.minimum(start + span, HW)
    if GROUPED:
        acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
        bank = (c // GROUP) * HW
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
            ft = tl.load(f_ptr + k[None, :] * HW + hw[:, None],
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
                          HW, GROUPED: tl.constexpr, BLOCK_C: tl.constexpr,
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


def forward_config(shape, strides, grouped: bool, k: int, dtype: torch.dtype, programs: int) -> dict:
    """Launch parameters of the forward kernel by the block rule of the module docstring.

    Constexpr arguments in upper case, then the launch options; ``k_blocks``, ``split`` and
    ``span`` size the grid.
    ``programs`` is how many programs fill the device (``target_programs``).
    """
    batch, channels, height, width = shape
    hw = height * width
    lo = 1 if grouped else MIN_DOT
    block_k = 1 if grouped else min(pow2(k, MIN_DOT), MAX_BLOCK_K)
    max_hw = MAX_BLOCK_HW if grouped else MAX_DOT_BLOCK
    if strides[1] == 1 and channels > 1:  # channels_last: channels are the contiguous axis
        block_c = max(min(pow2(channels), CL_BLOCK_C), lo)
        block_hw = max(min(TILE // block_c, pow2(hw), max_hw), lo)
    else:
        block_hw = max(min(pow2(hw), max_hw), lo)
        block_c = max(min(TILE // block_hw, pow2(channels), max_hw if not grouped else TILE), lo)
    k_blocks = 1 if grouped else triton.cdiv(k, block_k)
    tiles = batch * triton.cdiv(channels, block_c) * k_blocks
    split = max(1, min(triton.cdiv(programs, tiles), triton.cdiv(hw, block_hw)))
    span = triton.cdiv(triton.cdiv(hw, split), block_hw) * block_hw
    return dict(BLOCK_C=block_c, BLOCK_HW=block_hw, BLOCK_K=block_k, MERGED=strides[2] == width * strides[3],
                GROUPED=grouped, PRECISION=_precision(dtype), num_warps=4, num_stages=DOT_STAGES,
                k_blocks=k_blocks, split=triton.cdiv(hw, span), span=span)


def backward_config(channels: int, hw: int, k: int, grouped: bool, dtype: torch.dtype) -> dict:
    """Constexpr arguments and launch options of the backward kernel (same block rule, NCHW output)."""
    lo = 1 if grouped else MIN_DOT
    block_hw = max(min(pow2(hw), MAX_BLOCK_HW if grouped else MAX_DOT_BLOCK), lo)
    block_c = max(min(TILE // block_hw, pow2(channels), TILE if grouped else MAX_DOT_BLOCK), lo)
    block_k = 1 if grouped else min(pow2(k, MIN_DOT), MAX_BLOCK_K)
    return dict(GROUPED=grouped, BLOCK_C=block_c, BLOCK_HW=block_hw, BLOCK_K=block_k, PRECISION=_precision(dtype),
                num_warps=4, num_stages=DOT_STAGES)


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
    config = forward_config(x.shape, x.stride(), grouped, k, x.dtype, target_programs(x.device))
    k_blocks, split, span = config.pop("k_blocks"), config.pop("split"), config.pop("span")
    if split == 1:
        out = torch.empty(shape, dtype=x.dtype, device=x.device)
    else:
        out = torch.empty((split,) + shape, dtype=torch.float32, device=x.device)
    so = out.stride()[-len(shape):]
    grid = (batch, triton.cdiv(channels, config["BLOCK_C"]), split * k_blocks)
    wrap_triton(_pool_forward_kernel)[grid](
        x, filters.contiguous(), out, channels, k, k_blocks, channels // k if grouped else 1, span, *x.stride(),
        so[0], so[1], out.stride(0) if split > 1 else 0, height * width, width, **config)
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
    config = backward_config(channels, hw, k, grouped, grad.dtype)
    grid = (batch, triton.cdiv(channels, config["BLOCK_C"]), triton.cdiv(hw, config["BLOCK_HW"]))
    wrap_triton(_pool_backward_kernel)[grid](
        grad, filters.contiguous(), out, channels, k, channels // k if grouped else 1, grad.stride(0),
        grad.stride(1), 0 if grouped else grad.stride(2), hw, **config)
    return out
