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

Grid: axis 0 is ``(image, channel block)`` folded (up to 2**31 - 1 programs; ``B * C`` is below
2**31), so neither the batch nor the channel count meets the 65535 limit of axes 1 and 2.
Forward axis 1 is ``split * K blocks`` (split is at most the programs that fill the GPU).
Backward axis 1 walks the H*W blocks: ``min(H*W blocks, 65535)`` programs, each looping over
the blocks ``pid, pid + 65535, ...`` (``backward_grid``), so any map size launches (the old
``cdiv(H*W, 64)`` axis passed 65535 beyond about 2048x2048).
Launches run under ``torch.cuda.device(x.device)`` (``_utils.device_guard``): Triton launches on
the current device, which need not be x's.

Precision: inputs of any floating dtype accumulate in fp32; the ungrouped dots use ``tf32x3``
(``tf32`` when torch's float32 matmul precision allows it) for fp32. For fp16/bf16 input, x (and
the backward's incoming gradient) is exact in TF32 (at most 11 significant bits, fp32's
exponent range) but the fp32 filters are not: a plain ``tf32`` dot would truncate them to 10
mantissa bits, a relative error up to 2**-10 on every product (a bias of about 1e-3). So the
filters are split ``f = hi + lo`` with ``hi`` = f with its low 13 mantissa bits cleared (exact
in TF32) and ``lo = f - hi`` (exact in fp32, ``|lo| < 2**-10 |f|``), and two TF32 dots are
accumulated, ``x @ hi + x @ lo``: only ``lo``'s own TF32 rounding is lost, so every product
carries a relative error below 2**-20 (against 3 * 2**-20 for tf32x3, which spends a third dot
on x's low part, zero here) and the sum is an fp32 accumulation of 2 * H*W (2 * K) terms.
The bound is ``pool_error`` in tests/kernel_checks.py. float64 input is refused: the triton
backend (``freqalign/ops/triton_backend.py``) runs it on the plain-PyTorch reference.
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from . import _utils
from ._utils import CUDA_GRID_YZ, MAX_GRID_X, MIN_DOT, TILE, device_guard, fp32_precision, pow2, target_programs

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
def _filter_dot(a, f, acc, SPLIT_FILTERS: tl.constexpr, PRECISION: tl.constexpr):
    """``acc + a @ f`` for fp32 tiles; with SPLIT_FILTERS (``a`` exact in TF32: fp16/bf16 data)
    as two TF32 dots over ``f = hi + lo``, hi = f with its low 13 mantissa bits cleared."""
    if SPLIT_FILTERS:
        hi = (f.to(tl.int32, bitcast=True) & -8192).to(tl.float32, bitcast=True)
        acc = tl.dot(a, hi, acc, input_precision="tf32")
        return tl.dot(a, f - hi, acc, input_precision="tf32")
    return tl.dot(a, f, acc, input_precision=PRECISION)


@triton.jit
def _pool_forward_kernel(x_ptr, f_ptr, out_ptr, C, C_BLOCKS, K, K_BLOCKS, GROUP, span, sxb, sxc, sxh, sxw,
                         sob, soc, sos, HW, W, MERGED: tl.constexpr, GROUPED: tl.constexpr,
                         BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_K: tl.constexpr,
                         PRECISION: tl.constexpr, SPLIT_FILTERS: tl.constexpr):
    pid = tl.program_id(0)  # (image, channel block), folded
    b = pid // C_BLOCKS
    c = (pid % C_BLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    split = tl.program_id(1) // K_BLOCKS
    k = (tl.program_id(1) % K_BLOCKS) * BLOCK_K + tl.arange(0, BLOCK_K)
    live_c = c < C
    row = b.to(tl.int64) * sxb + c.to(tl.int64) * sxc
    start = split * span
    stop = tl.minimum(start + span, HW)
    if GROUPED:
        acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
        bank = (c // GROUP).to(tl.int64) * HW
    else:
        acc = tl.zeros((BLOCK_C, BLOCK_K), dtype=tl.float32)
        bank = k.to(tl.int64) * HW
    for first in range(start, stop, BLOCK_HW):
        hw = first + tl.arange(0, BLOCK_HW)
        live_hw = hw < stop
        x = tl.load(x_ptr + row[:, None] + _hw_offsets(hw, W, sxh, sxw, MERGED)[None, :],
                    mask=live_c[:, None] & live_hw[None, :], other=0.0).to(tl.float32)
        if GROUPED:
            f = tl.load(f_ptr + bank[:, None] + hw[None, :], mask=live_c[:, None] & live_hw[None, :], other=0.0)
            acc += x * f.to(tl.float32)
        else:
            ft = tl.load(f_ptr + bank[None, :] + hw[:, None], mask=live_hw[:, None] & (k < K)[None, :], other=0.0)
            acc = _filter_dot(x, ft.to(tl.float32), acc, SPLIT_FILTERS, PRECISION)
    out = out_ptr + split.to(tl.int64) * sos + b.to(tl.int64) * sob + c.to(tl.int64) * soc
    if GROUPED:
        tl.store(out, tl.sum(acc, axis=1).to(out_ptr.dtype.element_ty), mask=live_c)
    else:
        tl.store(out[:, None] + k[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=live_c[:, None] & (k < K)[None, :])


@triton.jit
def _pool_backward_kernel(g_ptr, f_ptr, out_ptr, C, C_BLOCKS, K, GROUP, sgb, sgc, sgk, HW, HW_BLOCKS,
                          GROUPED: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
                          BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SPLIT_FILTERS: tl.constexpr):
    pid = tl.program_id(0)  # (image, channel block), folded
    b = pid // C_BLOCKS
    c = (pid % C_BLOCKS) * BLOCK_C + tl.arange(0, BLOCK_C)
    live_c = c < C
    grad = g_ptr + b.to(tl.int64) * sgb + c.to(tl.int64) * sgc
    out_rows = (b.to(tl.int64) * C + c.to(tl.int64)) * HW
    if GROUPED:
        g = tl.load(grad, mask=live_c, other=0.0).to(tl.float32)
        bank = (c // GROUP).to(tl.int64) * HW
    # axis 1 has at most 65535 programs: each walks the H*W blocks pid, pid + num_programs, ...
    for blk in range(tl.program_id(1), HW_BLOCKS, tl.num_programs(1)):
        hw = blk * BLOCK_HW + tl.arange(0, BLOCK_HW)
        live_hw = hw < HW
        mask = live_c[:, None] & live_hw[None, :]
        if GROUPED:
            f = tl.load(f_ptr + bank[:, None] + hw[None, :], mask=mask, other=0.0)
            y = g[:, None] * f.to(tl.float32)
        else:
            y = tl.zeros((BLOCK_C, BLOCK_HW), dtype=tl.float32)
            for first in range(0, K, BLOCK_K):
                k = first + tl.arange(0, BLOCK_K)
                gk = tl.load(grad[:, None] + k[None, :].to(tl.int64) * sgk, mask=live_c[:, None] & (k < K)[None, :],
                             other=0.0)
                f = tl.load(f_ptr + k.to(tl.int64)[:, None] * HW + hw[None, :],
                            mask=(k < K)[:, None] & live_hw[None, :], other=0.0)
                y = _filter_dot(gk.to(tl.float32), f.to(tl.float32), y, SPLIT_FILTERS, PRECISION)
        tl.store(out_ptr + out_rows[:, None] + hw[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def _precision(dtype: torch.dtype) -> str:
    """``input_precision`` of the ungrouped dots for ``dtype`` input (fp16/bf16: see ``_split``)."""
    return fp32_precision() if dtype == torch.float32 else "tf32"


def _split(dtype: torch.dtype, grouped: bool) -> bool:
    """Whether the ungrouped dots split the fp32 filters into two TF32 parts (fp16/bf16 input)."""
    return not grouped and dtype in (torch.float16, torch.bfloat16)


def forward_config(shape, strides, grouped: bool, k: int, dtype: torch.dtype, programs: int) -> dict:
    """Launch parameters of the forward kernel by the block rule of the module docstring.

    Constexpr arguments in upper case, then the launch options; ``k_blocks``, ``split`` and
    ``span`` size the grid (``forward_grid``).
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
                GROUPED=grouped, PRECISION=_precision(dtype), SPLIT_FILTERS=_split(dtype, grouped), num_warps=4,
                num_stages=DOT_STAGES, k_blocks=k_blocks, split=triton.cdiv(hw, span), span=span)


def backward_config(channels: int, hw: int, k: int, grouped: bool, dtype: torch.dtype) -> dict:
    """Constexpr arguments and launch options of the backward kernel (same block rule, NCHW output)."""
    lo = 1 if grouped else MIN_DOT
    block_hw = max(min(pow2(hw), MAX_BLOCK_HW if grouped else MAX_DOT_BLOCK), lo)
    block_c = max(min(TILE // block_hw, pow2(channels), TILE if grouped else MAX_DOT_BLOCK), lo)
    block_k = 1 if grouped else min(pow2(k, MIN_DOT), MAX_BLOCK_K)
    return dict(GROUPED=grouped, BLOCK_C=block_c, BLOCK_HW=block_hw, BLOCK_K=block_k, PRECISION=_precision(dtype),
                SPLIT_FILTERS=_split(dtype, grouped), num_warps=4, num_stages=DOT_STAGES)


def _channel_blocks(batch: int, channels: int, block_c: int) -> int:
    """Channel blocks per image; grid axis 0 runs over (image, channel block), at most 2**31 - 1."""
    blocks = triton.cdiv(channels, block_c)
    if batch * blocks > MAX_GRID_X:
        raise ValueError(f"freq_pool (triton): B={batch} x {blocks} channel blocks of {block_c} exceed the "
                         f"{MAX_GRID_X} programs of grid axis 0; split the batch")
    return blocks


def forward_grid(batch: int, channels: int, config: dict, k_blocks: int, split: int) -> tuple:
    """(grid, channel blocks) of the forward: axis 0 (image, channel block), axis 1 (split, K block)."""
    c_blocks = _channel_blocks(batch, channels, config["BLOCK_C"])
    if split * k_blocks > CUDA_GRID_YZ:  # split is at most the programs that fill the GPU
        raise ValueError(f"freq_pool (triton): {k_blocks} blocks of {config['BLOCK_K']} filters exceed the "
                         f"{CUDA_GRID_YZ} programs of grid axis 1; pool fewer frequencies per call")
    return (batch * c_blocks, split * k_blocks), c_blocks


def backward_grid(batch: int, channels: int, hw: int, config: dict, max_yz: int = None) -> tuple:
    """(grid, channel blocks, H*W blocks) of the backward.

    Axis 0: (image, channel block); axis 1: ``min(H*W blocks, max_yz)`` programs (default
    ``_utils.MAX_GRID_YZ``, CUDA's 65535, which the tests lower to make every program loop),
    each looping over every ``max_yz``-th H*W block, so any map size launches.
    """
    limit = _utils.MAX_GRID_YZ if max_yz is None else max_yz
    c_blocks = _channel_blocks(batch, channels, config["BLOCK_C"])
    hw_blocks = triton.cdiv(hw, config["BLOCK_HW"])
    return (batch * c_blocks, max(1, min(hw_blocks, limit))), c_blocks, hw_blocks


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype == torch.float64:
        raise TypeError("the Triton pooling kernels take float16, bfloat16 or float32 input, got float64 "
                        "(the triton backend runs float64 on the plain-PyTorch reference)")


@triton_op("freqalign::triton_pool_forward", mutates_args=())
def pool_forward(x: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    _check_dtype(x.dtype)
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
    grid, c_blocks = forward_grid(batch, channels, config, k_blocks, split)
    with device_guard(x.device):
        wrap_triton(_pool_forward_kernel)[grid](
            x, filters.contiguous(), out, channels, c_blocks, k, k_blocks, channels // k if grouped else 1, span,
            *x.stride(), so[0], so[1], out.stride(0) if split > 1 else 0, height * width, width, **config)
    return out if split == 1 else out.sum(0).to(x.dtype)


@triton_op("freqalign::triton_pool_backward", mutates_args=())
def pool_backward(grad: torch.Tensor, filters: torch.Tensor, grouped: bool) -> torch.Tensor:
    _check_dtype(grad.dtype)
    k, height, width = filters.shape
    batch, channels = grad.shape[0], grad.shape[1]
    hw = height * width
    out = torch.empty((batch, channels, height, width), dtype=grad.dtype, device=grad.device)
    if out.numel() == 0:
        return out
    config = backward_config(channels, hw, k, grouped, grad.dtype)
    grid, c_blocks, hw_blocks = backward_grid(batch, channels, hw, config)
    with device_guard(grad.device):
        wrap_triton(_pool_backward_kernel)[grid](
            grad, filters.contiguous(), out, channels, c_blocks, k, channels // k if grouped else 1, grad.stride(0),
            grad.stride(1), 0 if grouped else grad.stride(2), hw, hw_blocks, **config)
    return out
