"""The passes of the Triton multi-spectral attention (``freqalign::triton_attention_scale`` and
``freqalign::triton_attention_reduce``), composed with the grouped pooling of ``pool.py`` into
``freqalign::triton_ms_attention`` by ``freqalign/ops/fused_attention.py``.

Both take dense x in one of two layouts, told apart by the strides: NCHW (H*W contiguous per
channel) or channels_last (C contiguous per pixel); the output has the input's strides.

- scale: ``out[b, c, hw] = a[b, c] * inp[b, c, hw] + d[b, c] * filters[c // G, hw]`` (no d: the
  forward's scaling; with d: the input gradient, scale term plus pooling adjoint), one read and
  one write. Grid: axis 0 (image, channel block) folded, axis 1 walks the H*W blocks (at most
  65535 programs, each looping).
- reduce: ``s[b, c] = sum_hw grad[b, c, hw] * x[b, c, hw]`` in fp32, one read of each; a program
  owns ``BLOCK_C`` channels of one image and walks all of H*W.

Tiles of about 4096 elements: NCHW ``BLOCK_HW = min(next_pow2(H*W), 1024)``, ``BLOCK_C =
4096 // BLOCK_HW``; channels_last ``BLOCK_C = min(next_pow2(C), 64)``, ``BLOCK_HW = 4096 // BLOCK_C``.
float64 is refused (the triton backend runs it on the torch reference).
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from . import _utils
from ._utils import TILE, device_guard, pow2
from .pool import MAX_BLOCK_HW, CL_BLOCK_C, _channel_blocks, pool_forward


@triton.jit
def _scale_kernel(in_ptr, a_ptr, d_ptr, f_ptr, out_ptr, C, C_BLOCKS, GROUP, HW, HW_BLOCKS, sb, sc, shw,
                  HAS_D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):
    pid = tl.program_id(0)  # (image, channel block), folded
    b = pid // C_BLOCKS
    c = (pid % C_BLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    live_c = c < C
    a = tl.load(a_ptr + b.to(tl.int64) * C + c, mask=live_c, other=0.0).to(tl.float32)
    if HAS_D:
        d = tl.load(d_ptr + b.to(tl.int64) * C + c, mask=live_c, other=0.0).to(tl.float32)
        bank = (c // GROUP).to(tl.int64) * HW
    row = b.to(tl.int64) * sb + c.to(tl.int64) * sc
    for blk in range(tl.program_id(1), HW_BLOCKS, tl.num_programs(1)):
        hw = blk * BLOCK_HW + tl.arange(0, BLOCK_HW)
        mask = live_c[:, None] & (hw < HW)[None, :]
        offsets = row[:, None] + hw.to(tl.int64)[None, :] * shw
        y = tl.load(in_ptr + offsets, mask=mask, other=0.0).to(tl.float32) * a[:, None]
        if HAS_D:
            y += d[:, None] * tl.load(f_ptr + bank[:, None] + hw[None, :], mask=mask, other=0.0).to(tl.float32)
        tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _reduce_kernel(g_ptr, x_ptr, s_ptr, C, C_BLOCKS, HW, sb, sc, shw, BLOCK_C: tl.constexpr,
                   BLOCK_HW: tl.constexpr):
    pid = tl.program_id(0)  # (image, channel block), folded
    b = pid // C_BLOCKS
    c = (pid % C_BLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    live_c = c < C
    row = b.to(tl.int64) * sb + c.to(tl.int64) * sc
    acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
    for first in range(0, HW, BLOCK_HW):
        hw = first + tl.arange(0, BLOCK_HW)
        mask = live_c[:, None] & (hw < HW)[None, :]
        offsets = row[:, None] + hw.to(tl.int64)[None, :] * shw
        g = tl.load(g_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        acc += g * tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    tl.store(s_ptr + b.to(tl.int64) * C + c, tl.sum(acc, axis=1), mask=live_c)


def config(shape, strides) -> dict:
    """Blocks (module docstring) and the (image, channel, pixel) strides of a dense NCHW or
    channels_last tensor."""
    batch, channels, height, width = shape
    hw = height * width
    if strides[1] == 1 and channels > 1:
        block_c = min(pow2(channels), CL_BLOCK_C)
        block_hw = min(TILE // block_c, pow2(hw))
    else:
        block_hw = min(pow2(hw), MAX_BLOCK_HW)
        block_c = min(TILE // block_hw, pow2(channels))
    return dict(BLOCK_C=block_c, BLOCK_HW=block_hw, strides=(strides[0], strides[1], strides[3]))


def _check(t: torch.Tensor, name: str) -> None:
    if t.dtype == torch.float64:
        raise TypeError(f"the Triton attention kernels take float16, bfloat16 or float32 {name}, got float64 "
                        "(the triton backend runs float64 on the plain-PyTorch reference)")
    strides = t.stride()
    dense_nchw = t.is_contiguous()
    dense_cl = t.is_contiguous(memory_format=torch.channels_last)
    if not (dense_nchw or dense_cl) or strides[2] != t.shape[3] * strides[3]:
        raise ValueError(f"the Triton attention kernels take a contiguous or channels_last {name}, got strides "
                         f"{strides} for shape {tuple(t.shape)}")


@triton_op("freqalign::triton_attention_scale", mutates_args=())
def scale(inp: torch.Tensor, a: torch.Tensor, d: torch.Tensor | None, filters: torch.Tensor) -> torch.Tensor:
    _check(inp, "input")
    batch, channels, height, width = inp.shape
    out = torch.empty_like(inp)
    if out.numel() == 0:
        return out
    cfg = config(inp.shape, inp.stride())
    sb, sc, shw = cfg.pop("strides")
    hw = height * width
    c_blocks = _channel_blocks(batch, channels, cfg["BLOCK_C"])
    hw_blocks = triton.cdiv(hw, cfg["BLOCK_HW"])
    grid = (batch * c_blocks, max(1, min(hw_blocks, _utils.MAX_GRID_YZ)))
    with device_guard(inp.device):
        wrap_triton(_scale_kernel)[grid](
            inp, a.contiguous(), a if d is None else d.contiguous(), filters.contiguous(), out, channels, c_blocks,
            channels // filters.shape[0], hw, hw_blocks, sb, sc, shw, HAS_D=d is not None, num_warps=4, **cfg)
    return out


@triton_op("freqalign::triton_attention_reduce", mutates_args=())
def reduce(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    _check(x, "x")
    if grad.stride() != x.stride():
        raise ValueError(f"grad and x must share their strides, got {grad.stride()} and {x.stride()}")
    batch, channels, height, width = x.shape
    s = torch.zeros((batch, channels), dtype=torch.float32, device=x.device)
    if x.numel() == 0:
        return s
    cfg = config(x.shape, x.stride())
    sb, sc, shw = cfg.pop("strides")
    c_blocks = _channel_blocks(batch, channels, cfg["BLOCK_C"])
    with device_guard(x.device):
        wrap_triton(_reduce_kernel)[(batch * c_blocks,)](grad, x, s, channels, c_blocks, height * width, sb, sc,
                                                        shw, num_warps=4, **cfg)
    return s


def pool(x: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Grouped pooling (B, C) by the Triton pooling kernel."""
    return pool_forward(x, filters, True)
