"""Checks of the fused attention op (``freqalign.ops.fused_attention``) shared by the CPU, Triton
interpreter and CUDA tests: output and gradients against the float64 reference within a
first-order worst-case rounding bound, and the output layout rule.

The bound (``attention_bound``) follows the op's arithmetic: pooled ``p = round_x(sum_hw x f)``
(HW-term fp32 sum; fp32 filters rounded once from the float64 basis; one rounding to x's dtype),
``z = W1 p`` (C terms), ``q = W2 relu(z)`` (hidden terms), ``s = sigmoid(q)`` (slope <= 1/4,
<= 4 ulps), ``y = round_x(x s)``; backward ``gs = sum_hw g x``, ``gq = gs s (1 - s)``, ``gz =
(gq W2) [z > 0]``, ``gp = gz W1``, ``grad_x = round_x(g s + gp f)``. Each error is bounded with
magnitudes (an n-term sum errs by gamma(n) sum |terms|) and propagated to first order; the oracle
is float64 (its own error is ~1e-16 relative, covered by the 2^-20 margin).
"""
import numpy as np
import torch

from freqalign.basis import pool_filters
from freqalign.ops.fused_attention import kernel_op, layout, reference_forward, reference_backward
from numerics import UNIT_ROUNDOFF, gamma

FREQS = ((0, 0), (1, 2), (3, 1), (2, 4))


def _np(t):
    return t.detach().double().cpu().numpy()


def make_case(shape, dtype, device, seed=0, fmt=torch.contiguous_format, hidden=4):
    """x, upstream gradient g, w1 (hidden, C), w2 (C, hidden), feature-size frequencies."""
    gen = torch.Generator().manual_seed(seed)
    draw = lambda *s: torch.randn(s, generator=gen, dtype=torch.float64)  # noqa: E731
    x = draw(*shape).to(dtype).to(device).contiguous(memory_format=fmt)
    g = draw(*shape).to(dtype).to(device).contiguous(memory_format=fmt)
    w1 = (draw(hidden, shape[1]) / shape[1] ** 0.5).float().to(device)
    w2 = (draw(shape[1], hidden) / hidden ** 0.5).float().to(device)
    k = max(d for d in range(1, 5) if shape[1] % d == 0)
    freqs = tuple((u % shape[2], v % shape[3]) for u, v in FREQS[:k])
    if len(set(freqs)) < len(freqs):
        freqs = ((0, 0),)
    return x, g, w1, w2, freqs


def run_op(x, g, w1, w2, freqs):
    """(y, grad_x, grad_w1, grad_w2) of the selected backend's op."""
    filters = pool_filters(freqs, x.shape[2], x.shape[3], "ortho",
                           torch.float64 if x.dtype == torch.float64 else torch.float32, x.device)
    leaves = [t.detach().requires_grad_(True) for t in (x, w1, w2)]  # x keeps its strides
    y = kernel_op(x)(leaves[0], filters, leaves[1], leaves[2])[0]
    return [y, *torch.autograd.grad(y, leaves, g)]


def reference(x, g, w1, w2, freqs):
    """The float64 reference on the same (rounded) inputs, and its intermediates."""
    x64, g64, w164, w264 = (t.detach().double().cpu() for t in (x, g, w1, w2))
    filters = pool_filters(freqs, x.shape[2], x.shape[3], "ortho", torch.float64, "cpu")
    y, p, r, s = reference_forward(x64, filters, w164, w264)
    gx, gw1, gw2 = reference_backward(g64, x64, filters, w164, w264, p, r, s)
    return [y, gx, gw1, gw2], dict(filters=_np(filters), p=_np(p), s=_np(s), w1=_np(w1), w2=_np(w2), r=_np(r))


def attention_bound(x, g, mid, truncates=False):
    """Worst-case |op - float64 reference| for y and grad_x (module docstring), or None where a
    ReLU input lies within its error bound of 0; ``truncates``: conversions to x's dtype may
    truncate (2u, as the Triton interpreter's bf16 does)."""
    u = UNIT_ROUNDOFF[x.dtype] * (2 if truncates else 1)
    sub = torch.finfo(x.dtype).smallest_normal * u  # a rounding's error where x's dtype underflows
    ua = UNIT_ROUNDOFF[torch.float64 if x.dtype == torch.float64 else torch.float32]
    xa, ga = np.abs(_np(x)), np.abs(_np(g))
    channels, (height, width) = x.shape[1], x.shape[2:]
    hw, group = height * width, x.shape[1] // mid["filters"].shape[0]
    bank = np.repeat(mid["filters"], group, axis=0)[None]  # (1, C, H, W)
    fa = np.abs(bank)
    # the op's filters: the float64 basis (within 16 N u64 of exact, as the oracle's) rounded once
    df = ua * fa + 32 * max(height, width) * UNIT_ROUNDOFF[torch.float64]
    p, s, w1, w2, r = mid["p"], mid["s"], mid["w1"], mid["w2"], mid["r"]
    ep = gamma(hw, ua) * (xa * fa).sum((2, 3)) + (xa * df).sum((2, 3)) + u * np.abs(p) + sub
    z = p @ w1.T
    ez = ep @ np.abs(w1).T + gamma(channels, ua) * (np.abs(p) @ np.abs(w1).T)
    if not (ez < np.abs(z)).all():
        return None  # a ReLU could flip within the bound: the caller draws another case
    eq = ez @ np.abs(w2).T + gamma(w2.shape[1], ua) * (r @ np.abs(w2).T)
    es = eq / 4 + 4 * ua * s
    y = _np(x) * s[:, :, None, None]
    ey = xa * es[:, :, None, None] + u * np.abs(y) + ua * np.abs(y) + sub
    xg = _np(g) * _np(x)
    gs = xg.sum((2, 3))
    egs = gamma(hw, ua) * np.abs(xg).sum((2, 3))
    gq = gs * s * (1 - s)
    egq = egs / 4 + np.abs(gs) * es + 3 * ua * np.abs(gq)
    gz = (gq @ w2) * (z > 0)
    egz = (egq @ np.abs(w2) + gamma(channels, ua) * (np.abs(gq) @ np.abs(w2))) * (z > 0)
    gp = gz @ w1
    egp = egz @ np.abs(w1) + gamma(w1.shape[0], ua) * (np.abs(gz) @ np.abs(w1))
    scaled, pooled_part = ga * s[:, :, None, None], np.abs(gp[:, :, None, None] * bank)
    egx = (ga * es[:, :, None, None] + egp[:, :, None, None] * fa + np.abs(gp)[:, :, None, None] * df
           + 3 * ua * (scaled + pooled_part) + u * (scaled + pooled_part) + sub)
    margin = 1 + 2.0 ** -20
    return ey * margin, egx * margin


def check_ms_attention(shape, dtype, device, fmt=torch.contiguous_format, seed=0, sliced=False, truncates=False):
    """The selected backend's op against the float64 reference: y and grad_x within the bound,
    the weight gradients within a relative 1e-2 (fp16/bf16) or 1e-5 of their magnitude, y in the
    layout rule's format and x's dtype."""
    for draw in range(seed, seed + 20):  # the first case whose ReLU inputs are clear of 0
        x, g, w1, w2, freqs = make_case(shape, dtype, device, draw, fmt)
        if sliced:  # a non-dense view: every other channel of a tensor twice as wide
            wide = torch.cat([x, x], 1).contiguous(memory_format=fmt)
            x = wide[:, ::2]
        want, mid = reference(x, g, w1, w2, freqs)
        limits = attention_bound(x, g, mid, truncates)
        if limits is not None:
            break
    assert limits is not None, "every draw had a ReLU input within its bound of 0"
    got = run_op(x, g, w1, w2, freqs)
    assert got[0].dtype == x.dtype and got[1].dtype == x.dtype
    assert got[0].is_contiguous(memory_format=layout(x)), f"y is not in {layout(x)}"
    for name, out, ref, limit in zip(("y", "grad_x"), got[:2], want[:2], limits):
        ratio = np.abs(_np(out) - _np(ref)) / np.maximum(limit, np.finfo(np.float64).tiny)
        assert np.isfinite(_np(out)).all() and ratio.max() <= 1.0, (
            f"{name} ({dtype}, {shape}, {fmt}): worst error is {ratio.max():.2f}x its bound")
    rel = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-5
    for name, out, ref in zip(("grad_w1", "grad_w2"), got[2:], want[2:]):
        scale = _np(ref).__abs__().max() + 1e-30
        assert np.abs(_np(out) - _np(ref)).max() <= rel * scale, f"{name} ({dtype}, {shape})"
