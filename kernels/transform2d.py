"""``freqalign::triton_transform2d``: ``y[p] = left @ x[p] @ right.T`` for every (H, W) plane.

This one kernel op serves ``dct2d`` (``left = C_H``, ``right = C_W``) and ``idct2d`` (their
transposes); its backward is itself with transposed matrices (registered in ``freqalign.ops.autograd``).

Two fused forms, both one read of x and one write of y (the matrices stay in registers for the
whole persistent program):

- **Kronecker** (``H * W <= 64``: 7x7, 8x8, 3x5 ...): a plane is one row vector of length
  ``H * W`` (padded to ``KP = max(16, next_pow2(H * W))``), and ``y = x @ (left ⊗ right).T`` is a
  single ``tl.dot`` of ``(BLOCK_P, KP) @ (KP, KP)``. The Kronecker matrix is built in registers
  from ``left`` and ``right``. For 7x7 this costs 64*64 multiply-adds per plane, half of what
  the separable form costs once 7 is padded to the 16 that ``tl.dot`` needs.
- **Separable** (``H, W <= 64``, ``H * W > 64``: 12x12, 14x14, 32x32, 56x56 ...): ``BLOCK_P``
  planes as a ``(BLOCK_P, HP, WP)`` tile (each side padded to ``max(16, next_pow2)``), then
  ``t = x @ right.T`` as one ``(BLOCK_P * HP, WP) @ (WP, WP)`` dot and ``y.T = t.T @ left.T`` as
  one ``(BLOCK_P * WP, HP) @ (HP, HP)`` dot on the transposed tile, stored transposed.

Block rule: ``BLOCK_P`` planes per step so that a tile holds about 4096 elements
(``TILE // (HP * WP)``, or 4096 // KP, at least 16 rows for the Kronecker dot), never more
than the planes there are; the grid is persistent, ``min(blocks, 8 * SMs)`` programs striding
over plane blocks so that the matrices are loaded once per program (one axis: never near
the grid limits). Launches run under ``torch.cuda.device(x.device)`` (``_utils.device_guard``):
Triton launches on the current device, which need not be x's.

Precision: float32 inputs use ``tf32x3`` (about fp32 accuracy) under torch's default
``float32_matmul_precision="highest"`` and plain ``tf32`` under ``high``/``medium``, like
cuBLAS; float16/bfloat16 inputs multiply in their own dtype (the matrices are rounded to it)
with float32 accumulation. Planes beyond 64 on a side (and float64 input, which the triton
backend sends to the torch reference anyway) are computed by the plain-PyTorch matmul (cuBLAS).
"""
import torch
import triton
import triton.language as tl
from torch.library import triton_op, wrap_triton

from ._utils import MIN_DOT, TILE, device_guard, fp32_precision, pow2, target_programs

MAX_SIDE = 64  # largest padded side the fused forms keep in registers
KRON_MAX = 64  # largest H * W for the Kronecker form


@triton.jit
def _plane_base(p, C, sxb, sxc, FLAT_PLANES: tl.constexpr):
    """Element offset of plane ``p = b * C + c`` of a (B, C, H, W) tensor with strides sxb, sxc.

    FLAT_PLANES (``sxb == C * sxc``, e.g. contiguous x): one multiply instead of a 64-bit division.
    """
    p64 = p.to(tl.int64)
    if FLAT_PLANES:
        return p64 * sxc
    return (p64 // C) * sxb + (p64 % C) * sxc


@triton.jit
def _kronecker_kernel(x_ptr, left_ptr, right_ptr, y_ptr, P, C, sxb, sxc, sxh, sxw,
                      H, W, KP: tl.constexpr, MERGED: tl.constexpr, FLAT_PLANES: tl.constexpr,
                      BLOCK_P: tl.constexpr, PRECISION: tl.constexpr):
    dot_dtype = x_ptr.dtype.element_ty
    j = tl.arange(0, KP)  # flattened input position h * W + w
    i = tl.arange(0, KP)  # flattened output position u * W + v
    valid = (j[:, None] < H * W) & (i[None, :] < H * W)
    # kt[j, i] = left[u, h] * right[v, w]: the transposed Kronecker product, built once per program
    lft = tl.load(left_ptr + (i[None, :] // W) * H + (j[:, None] // W), mask=valid, other=0.0)
    rgt = tl.load(right_ptr + (i[None, :] % W) * W + (j[:, None] % W), mask=valid, other=0.0)
    kt = (lft.to(tl.float32) * rgt.to(tl.float32)).to(dot_dtype)
    if MERGED:
        offs_in = j.to(tl.int64) * sxw
    else:
        offs_in = (j // W).to(tl.int64) * sxh + (j % W).to(tl.int64) * sxw
    rows = tl.arange(0, BLOCK_P)
    for blk in range(tl.program_id(0), tl.cdiv(P, BLOCK_P), tl.num_programs(0)):
        p = blk * BLOCK_P + rows
        mask = (p < P)[:, None] & (j < H * W)[None, :]
        x = tl.load(x_ptr + _plane_base(p, C, sxb, sxc, FLAT_PLANES)[:, None] + offs_in[None, :], mask=mask,
                    other=0.0)
        y = tl.dot(x.to(dot_dtype), kt, input_precision=PRECISION)
        out = p.to(tl.int64)[:, None] * (H * W) + i[None, :]
        tl.store(y_ptr + out, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _separable_kernel(x_ptr, left_ptr, right_ptr, y_ptr, P, C, sxb, sxc, sxh, sxw,
                      H, W, HP: tl.constexpr, WP: tl.constexpr, FLAT_PLANES: tl.constexpr,
                      BLOCK_P: tl.constexpr, PRECISION: tl.constexpr):
    dot_dtype = x_ptr.dtype.element_ty
    h = tl.arange(0, HP)
    w = tl.arange(0, WP)
    # rt[w, v] = right[v, w] and lt[h, u] = left[u, h], zero-padded, loaded once per program
    rt = tl.load(right_ptr + w[None, :] * W + w[:, None],
                 mask=(w[:, None] < W) & (w[None, :] < W), other=0.0).to(dot_dtype)
    lt = tl.load(left_ptr + h[None, :] * H + h[:, None],
                 mask=(h[:, None] < H) & (h[None, :] < H), other=0.0).to(dot_dtype)
    in_plane = h[None, :, None].to(tl.int64) * sxh + w[None, None, :].to(tl.int64) * sxw
    in_mask = (h < H)[None, :, None] & (w < W)[None, None, :]
    out_plane = h[None, None, :] * W + w[None, :, None]  # stored transposed: (p, v, u)
    out_mask = (w < W)[None, :, None] & (h < H)[None, None, :]
    planes = tl.arange(0, BLOCK_P)
    for blk in range(tl.program_id(0), tl.cdiv(P, BLOCK_P), tl.num_programs(0)):
        p = blk * BLOCK_P + planes
        live = (p < P)[:, None, None]
        x = tl.load(x_ptr + _plane_base(p, C, sxb, sxc, FLAT_PLANES)[:, None, None] + in_plane,
                    mask=live & in_mask, other=0.0)
        t = tl.dot(tl.reshape(x.to(dot_dtype), (BLOCK_P * HP, WP)), rt, input_precision=PRECISION)
        t = tl.permute(tl.reshape(t, (BLOCK_P, HP, WP)), (0, 2, 1))  # t[p, v, h]
        z = tl.dot(tl.reshape(t.to(dot_dtype), (BLOCK_P * WP, HP)), lt, input_precision=PRECISION)
        z = tl.reshape(z, (BLOCK_P, WP, HP))  # z[p, v, u] = y[p, u, v]
        out = p.to(tl.int64)[:, None, None] * (H * W) + out_plane
        tl.store(y_ptr + out, z.to(y_ptr.dtype.element_ty), mask=live & out_mask)


def _as_planes(x: torch.Tensor):
    """x viewed as (B, C, H, W) without copying when possible: returns (x4, P, C, strides)."""
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() > 4:
        x = x.reshape(-1, x.shape[-2], x.shape[-1])
    if x.dim() == 3:
        x = x.unsqueeze(0)
    b, c = x.shape[0], x.shape[1]
    return x, b * c, c, x.stride()


def _reference(x, left, right):
    return (left @ x.to(left.dtype) @ right.transpose(0, 1)).to(x.dtype).contiguous()


def launch_config(height: int, width: int, planes: int, dtype: torch.dtype):
    """(kernel, constexpr arguments and launch options) for a transform of ``planes`` planes of H x W in ``dtype``.

    None when the fused forms do not apply (float64, or a side beyond 64 with H * W > 64).
    """
    if dtype == torch.float64:
        return None
    precision = fp32_precision() if dtype == torch.float32 else "ieee"
    if height * width <= KRON_MAX:
        kp = pow2(height * width, MIN_DOT)
        block = min(max(TILE // kp, MIN_DOT), pow2(planes, MIN_DOT))
        return _kronecker_kernel, dict(KP=kp, BLOCK_P=block, PRECISION=precision, num_warps=4, num_stages=3)
    if max(height, width) > MAX_SIDE:
        return None
    hp, wp = pow2(height, MIN_DOT), pow2(width, MIN_DOT)
    block = min(max(TILE // (hp * wp), 1), pow2(planes))
    return _separable_kernel, dict(HP=hp, WP=wp, BLOCK_P=block, PRECISION=precision, num_warps=4, num_stages=3)


@triton_op("freqalign::triton_transform2d", mutates_args=())
def transform2d(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2], x.shape[-1]
    x4, planes, channels, (sxb, sxc, sxh, sxw) = _as_planes(x)
    config = launch_config(height, width, planes, x.dtype)
    if config is None:
        return _reference(x, left, right)
    kernel, constexprs = config
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    if kernel is _kronecker_kernel:
        constexprs["MERGED"] = sxh == width * sxw
    constexprs["FLAT_PLANES"] = x4.shape[0] == 1 or sxb == channels * sxc
    grid = (min(triton.cdiv(planes, constexprs["BLOCK_P"]), target_programs(x.device)),)
    with device_guard(x.device):
        wrap_triton(kernel)[grid](x4, left.contiguous(), right.contiguous(), y, planes, channels,
                                  sxb, sxc, sxh, sxw, height, width, **constexprs)
    return y
