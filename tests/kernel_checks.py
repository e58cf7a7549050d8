"""Checks shared by the op tests (test_ops, test_freqpool, test_autocast), tests/test_triton.py
(interpreter, CPU) and tests/test_cuda.py (GPU).

Each check runs the public op on the named backend (the one selected by the caller), on
``device`` in ``dtype``, forward and backward, against a float64 ``scipy.fft`` oracle computed
from the same (dtype-rounded) input (the float64 cosine formula where scipy is missing, as it
may be on the GPU machine). Every element must lie within its worst-case error bound
(``numerics``), built from how that backend computes (``dct_error``, ``pool_error``).
"""
import numpy as np
import torch

try:
    import scipy.fft as scipy_fft
except ImportError:  # e.g. the GPU machine's bare environment: the float64 cosine formula instead
    scipy_fft = None

from freqalign import dct2d, freq_pool, idct2d
from numerics import (TF32X3, UNIT_ROUNDOFF, accumulation, assert_within, bound, dct_magnitude,
                      dct_matrix64, oracle_error, relative_error)

U32 = UNIT_ROUNDOFF[torch.float32]
KRONECKER_MAX = 64  # freqalign.kernels.transform2d: the Triton Kronecker form for H * W <= 64
TRITON_MAX_SIDE = 64  # ... and the separable form for sides <= 64; larger planes go to torch


# -- how each backend computes, as a relative error bound --------------------------------------

def truncates(backend: str, dtype: torch.dtype) -> bool:
    """Whether the backend's kernels truncate when converting fp32 to ``dtype`` (error 2u, not u):
    Triton's fp32 -> bf16 does in its interpreter; everything else rounds to nearest."""
    return backend == "triton" and dtype == torch.bfloat16


def dct_error(backend: str, dtype: torch.dtype, height: int, width: int) -> float:
    """Relative error (of ``|C_H| |x| |C_W|^T``) of ``transform2d`` on ``backend``.

    torch, cpu, cuda: two matmuls (H + W terms) over bases rounded once to the accumulation dtype.
    triton (fp16/fp32): the Kronecker form, one dot of H*W terms over ``fl(l * r)`` (3 float32
    roundings, then one to fp16; fp32 dots use tf32x3), or the separable form, whose fp16 dots
    multiply by bases and an intermediate rounded to fp16; float64 and larger planes: the torch path.
    """
    acc = accumulation(dtype)
    half = dtype in (torch.float16, torch.bfloat16)
    fused = backend == "triton" and dtype != torch.float64 and (
        height * width <= KRONECKER_MAX or max(height, width) <= TRITON_MAX_SIDE)
    if not fused:
        return relative_error(height + width, acc, [(2, UNIT_ROUNDOFF[acc])])
    dot = (1, UNIT_ROUNDOFF[dtype] * (2 if truncates(backend, dtype) else 1)) if half else (1, TF32X3)
    if height * width <= KRONECKER_MAX:
        return relative_error(height * width, acc, [(3, U32), dot])
    return relative_error(height + width, acc, [(2, U32), (3 if half else 2, dot[1])])


# Triton's ungrouped fp16/bf16 pooling dots (kernels/pool.py) split each fp32 filter into
# hi (exact in TF32) + lo (|lo| < 2^-10 |f|) and run two TF32 dots: lo's own TF32 rounding
# (< 2^-10 |lo|) is the only representation error, below 2^-20 |f| per product.
TF32_SPLIT = 2.0 ** -20


def pool_error(backend: str, dtype: torch.dtype, terms: int, grouped: bool) -> float:
    """Relative error of ``pool_forward`` (``terms = H * W``) or ``pool_backward`` (``terms = K``,
    1 when grouped): fp32 (fp64) accumulation over filters rounded once to it; Triton's ungrouped
    dots use tf32x3 for fp32, and for fp16/bf16 input (exact in TF32) two TF32 dots over the
    split filters: 2 * terms products accumulated (``x hi`` and ``x lo``, whose magnitudes add
    up to at most (1 + 2^-9) ``|x f|``), each within ``TF32_SPLIT`` of ``x f`` after the split."""
    acc = accumulation(dtype)
    factors = [(1, UNIT_ROUNDOFF[acc])]
    if backend == "triton" and not grouped and dtype != torch.float64:
        if dtype in (torch.float16, torch.bfloat16):
            return relative_error(2 * terms, acc, factors + [(1, TF32_SPLIT)]) * (1 + 2.0 ** -9)
        factors.append((1, TF32X3))
    return relative_error(terms, acc, factors)


# -- oracle ------------------------------------------------------------------------------------

def _dctn(array, inverse=False):
    if scipy_fft is not None:
        fn = scipy_fft.idctn if inverse else scipy_fft.dctn
        return fn(array, type=2, norm="ortho", axes=(-2, -1))
    rows, cols = dct_matrix64(array.shape[-2]), dct_matrix64(array.shape[-1])
    return rows.T @ array @ cols if inverse else rows @ array @ cols.T


def _numpy(a: torch.Tensor) -> np.ndarray:
    return a.detach().double().cpu().numpy()


def make_input(shape, dtype, device, layout="contiguous", seed=0):
    """A seeded random input in ``layout``: contiguous, channels_last, or transposed (H, W strides
    swapped); for (B, C, H, W) shapes also views of larger or smaller tensors: ``sliced`` (every
    other channel of 2C + 1, an inner H x W window of an (H + 3) x (W + 2) map: no dimension
    mergeable with the next), ``cropped_channels_last`` (an inner window of a channels_last map:
    channel stride 1, rows not mergeable), ``expanded`` (one image expanded over the batch:
    batch stride 0) and ``broadcast_channels`` (one channel expanded over C: channel stride 0)."""
    gen = torch.Generator().manual_seed(seed)
    if layout in ("sliced", "cropped_channels_last", "expanded", "broadcast_channels"):
        b, c, h, w = shape
        base_shape = {"sliced": (b, 2 * c + 1, h + 3, w + 2), "cropped_channels_last": (b, c, h + 3, w + 2),
                      "expanded": (1, c, h, w), "broadcast_channels": (b, 1, h, w)}[layout]
        base = torch.randn(base_shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
        if layout == "sliced":
            return base[:, 1::2, 2:2 + h, 1:1 + w]
        if layout == "cropped_channels_last":
            return base.contiguous(memory_format=torch.channels_last)[:, :, 2:2 + h, 1:1 + w]
        return base.expand(shape)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return x


def assert_dct(out, a, backend, inverse, what):
    """``out`` is ``dct2d(a)`` (``idct2d`` with ``inverse``) within its bound; ``a`` in ``out``'s dtype."""
    a64 = _numpy(a)
    exact = _dctn(a64, inverse)
    rel = dct_error(backend, out.dtype, a.shape[-2], a.shape[-1])
    limit = bound(dct_magnitude(a64, inverse), exact, rel, out.dtype, truncates(backend, out.dtype),
                  oracle_error(a64))
    assert_within(out, exact, limit, what)


def check_dct_roundtrip(shape, dtype, device, backend, layout="contiguous"):
    """dct2d and idct2d forward against scipy, and their backward (each the other's adjoint)."""
    x = make_input(shape, dtype, device, layout).requires_grad_(True)
    y = dct2d(x)
    assert y.dtype == dtype and y.shape == x.shape and y.is_contiguous()
    assert_dct(y, x, backend, False, f"dct2d {tuple(shape)} {dtype}")
    g = make_input(shape, dtype, device, seed=1)
    (grad,) = torch.autograd.grad(y, x, g)
    assert_dct(grad, g, backend, True, f"dct2d backward {tuple(shape)} {dtype}")

    c = make_input(shape, dtype, device, layout, seed=2).requires_grad_(True)
    z = idct2d(c)
    assert_dct(z, c, backend, True, f"idct2d {tuple(shape)} {dtype}")
    (grad,) = torch.autograd.grad(z, c, g)
    assert_dct(grad, g, backend, False, f"idct2d backward {tuple(shape)} {dtype}")


def freqs_for(height, width, k, seed=0):
    """K distinct (u, v) frequencies (fewer when the map has fewer than K positions)."""
    rng = np.random.default_rng(seed)
    picks = rng.permutation(height * width)[:k]
    return [(int(i) // width, int(i) % width) for i in picks]


def _pick(coeffs, freqs, channels, grouped):
    """(B, C, K) of coefficients at ``freqs``; grouped: channel c's own frequency, (B, C)."""
    picked = np.stack([coeffs[:, :, u, v] for u, v in freqs], axis=-1)
    if not grouped:
        return picked
    group = np.arange(channels) // (channels // len(freqs))
    return picked[:, np.arange(channels), group]


def pool_reference(x, freqs, grouped, norm):
    """(exact, magnitude, oracle error) of ``freq_pool(x, freqs, grouped, norm)`` from scipy."""
    x64 = _numpy(x)
    height, width = x64.shape[-2:]
    scale = 1.0 / np.sqrt(height * width) if norm == "mean" else 1.0
    channels = x64.shape[1]
    exact = _pick(_dctn(x64), freqs, channels, grouped) * scale
    magnitude = _pick(dct_magnitude(x64), freqs, channels, grouped) * scale
    oracle = _pick(oracle_error(x64), freqs, channels, grouped) * scale
    return exact, magnitude, oracle


def check_pool_forward(out, x, freqs, grouped, norm, backend, what):
    exact, magnitude, oracle = pool_reference(x, freqs, grouped, norm)
    rel = pool_error(backend, out.dtype, x.shape[-2] * x.shape[-1], grouped)
    assert_within(out, exact, bound(magnitude, exact, rel, out.dtype, truncates(backend, out.dtype), oracle), what)


def check_pool_backward(grad_x, grad_out, freqs, grouped, norm, backend, what):
    """``grad_x[b, c] = sum_k grad_out[b, c, k] * B_k`` (grouped: one term), from scipy's inverse DCT
    of the spectrum holding ``grad_out`` at ``freqs``."""
    channels, height, width = grad_x.shape[1:]
    scale = 1.0 / np.sqrt(height * width) if norm == "mean" else 1.0
    g64 = _numpy(grad_out) * scale
    spectrum = np.zeros(grad_x.shape)
    group = np.arange(channels) // (channels // len(freqs)) if grouped else None
    for j, (u, v) in enumerate(freqs):
        if grouped:
            spectrum[:, group == j, u, v] = g64[:, group == j]
        else:
            spectrum[:, :, u, v] = g64[:, :, j]
    exact = _dctn(spectrum, inverse=True)
    magnitude = dct_magnitude(np.abs(spectrum), inverse=True)  # sum_k |g_k| |B_k|
    rel = pool_error(backend, grad_x.dtype, 1 if grouped else len(freqs), grouped)
    limit = bound(magnitude, exact, rel, grad_x.dtype, truncates(backend, grad_x.dtype), oracle_error(spectrum))
    assert_within(grad_x, exact, limit, what)


def check_pool(shape, k, grouped, norm, dtype, device, backend, layout="contiguous"):
    """freq_pool forward against the scipy coefficients, backward against scipy's inverse DCT."""
    height, width = shape[-2:]
    freqs = freqs_for(height, width, k)
    x = make_input(shape, dtype, device, layout).requires_grad_(True)
    out = freq_pool(x, freqs, grouped=grouped, norm=norm)
    assert out.dtype == dtype
    what = f"freq_pool {tuple(shape)} {dtype} K={len(freqs)} grouped={grouped} {norm} {layout}"
    check_pool_forward(out, x, freqs, grouped, norm, backend, what)
    g = make_input(out.shape[::-1], dtype, device, seed=3).transpose(0, -1)  # non-contiguous grad
    (grad,) = torch.autograd.grad(out, x, g)
    assert grad.shape == x.shape and grad.dtype == dtype
    check_pool_backward(grad, g, freqs, grouped, norm, backend, f"{what} backward")


# -- autocast (docs/design.md section 2) ----------------------------------------------------------

AUTOCAST_FREQS = [(0, 0), (1, 3), (5, 2)]  # K = 3: inputs have 6 channels (grouped: 2 per frequency)


def autocast_ops(x, names=("dct2d", "idct2d", "pool_grouped", "pool_ungrouped")) -> dict:
    """The ops the autocast policy covers, on ``x (B, 6, H, W)``: ``{name: output}``."""
    ops = {"dct2d": dct2d, "idct2d": idct2d,
           "pool_grouped": lambda t: freq_pool(t, AUTOCAST_FREQS, grouped=True),
           "pool_ungrouped": lambda t: freq_pool(t, AUTOCAST_FREQS, grouped=False)}
    return {name: ops[name](x) for name in names}


def promised_dtypes(x, autocast_dtype, names) -> dict:
    """The output dtypes the fake (meta) kernels promise for ``x`` under autocast: the ops run
    under ``FakeTensorMode``, so only the fake kernels (and torch's meta functions) run."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.autocast(x.device.type, dtype=autocast_dtype):
        return {name: out.dtype for name, out in autocast_ops(mode.from_tensor(x), names).items()}


def check_autocast(x, autocast_dtype, backend, names=("dct2d", "idct2d", "pool_grouped", "pool_ungrouped"),
                   run=autocast_ops, check_fake=True):
    """Under autocast to ``autocast_dtype``, each op (run by ``run``, e.g. a compiled
    ``autocast_ops``) returns the dtype its fake kernel promises, which is ``x``'s own, and lies
    within the bound of computing in ``x``'s precision with fp32 accumulation: an fp32 input
    lowered to fp16/bf16 would miss its bound by orders of magnitude. ``check_fake=False``
    where fake tensors cannot run (the Triton interpreter reads their data)."""
    with torch.autocast(x.device.type, dtype=autocast_dtype):
        outputs = run(x, names)
    if check_fake:
        assert promised_dtypes(x, autocast_dtype, names) == {name: x.dtype for name in names}
    for name, out in outputs.items():
        what = f"{name} of {x.dtype} under {autocast_dtype} autocast on {backend}"
        assert out.dtype == x.dtype, what
        _check_autocast_op(name, out, x, backend, what, adjoint=False)


def check_autocast_backward(x, autocast_dtype, backend, names=("dct2d", "idct2d", "pool_grouped", "pool_ungrouped")):
    """Gradients taken inside the autocast region (the hard case: backward runs under autocast
    too) have ``x``'s dtype and lie within their bounds."""
    for name in names:
        leaf = x.detach().requires_grad_(True)
        with torch.autocast(x.device.type, dtype=autocast_dtype):
            out = autocast_ops(leaf, (name,))[name]
            g = make_input(out.shape, x.dtype, x.device, seed=7)
            (grad,) = torch.autograd.grad(out, leaf, g)
        what = f"{name} backward of {x.dtype} under {autocast_dtype} autocast on {backend}"
        assert grad.dtype == x.dtype, what
        _check_autocast_op(name, grad, g, backend, what, adjoint=True)


def _check_autocast_op(name, out, given, backend, what, adjoint):
    """``out`` of op ``name`` (``autocast_ops``) applied to ``given``, or of its adjoint (the
    backward: the pool's adjoint, the inverse transform), within its bound."""
    if name.startswith("pool"):
        check = check_pool_backward if adjoint else check_pool_forward
        check(out, given, AUTOCAST_FREQS, name == "pool_grouped", "ortho", backend, what)
    else:
        assert_dct(out, given, backend, name == ("dct2d" if adjoint else "idct2d"), what)


def check_nan_propagates(dtype, device):
    """NaN in, NaN out: a NaN pixel poisons its own channel's outputs and no other."""
    x = make_input((2, 4, 7, 7), dtype, device)
    x[1, 2, 3, 4] = float("nan")
    for out in (freq_pool(x, [(0, 0), (1, 1)], grouped=True), freq_pool(x, [(0, 0), (1, 1)], grouped=False)):
        bad = torch.isnan(out.float()).reshape(2, 4, -1).any(-1).cpu()
        expected = torch.zeros(2, 4, dtype=torch.bool)
        expected[1, 2] = True
        assert torch.equal(bad, expected), f"NaN pattern {bad.tolist()}"
    y = dct2d(x)
    assert torch.isnan(y[1, 2].float()).all() and not torch.isnan(y[0].float()).any()
