"""Checks shared by tests/test_triton.py (interpreter, CPU) and tests/test_cuda.py (GPU).

Each check runs the public op on the currently selected backend, on ``device`` in ``dtype``,
forward and backward, against a float64 ``scipy.fft`` oracle computed from the same
(dtype-rounded) input (the float64 cosine formula where scipy is missing, as it may be on the
GPU machine). Errors are measured relative to the largest reference value.
"""
import numpy as np
import torch

try:
    import scipy.fft as scipy_fft
except ImportError:  # e.g. the GPU machine's bare environment: the float64 cosine formula instead
    scipy_fft = None

from freqalign import dct2d, freq_pool, idct2d

# max |out - ref| / max |ref|; bf16's 1e-2 is the project's accuracy target
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 1e-2}


def relative_error(out: torch.Tensor, ref: np.ndarray) -> float:
    out = out.detach().double().cpu().numpy()
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    assert np.isfinite(out).all(), "non-finite values in the output"
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-30))


def assert_close(out, ref, dtype, what):
    err = relative_error(out, ref)
    assert err <= TOLERANCE[dtype], f"{what}: relative error {err:.2e} > {TOLERANCE[dtype]:.0e} for {dtype}"


def _cosine_matrix(n):
    """The orthonormal DCT-II matrix from its formula, in float64 (used only without scipy)."""
    u, t = np.arange(n)[:, None], np.arange(n)[None, :]
    scale = np.where(u == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
    return scale * np.cos(np.pi * (2 * t + 1) * u / (2 * n))


def _dctn(array, inverse=False):
    if scipy_fft is not None:
        fn = scipy_fft.idctn if inverse else scipy_fft.dctn
        return fn(array, type=2, norm="ortho", axes=(-2, -1))
    rows, cols = _cosine_matrix(array.shape[-2]), _cosine_matrix(array.shape[-1])
    return rows.T @ array @ cols if inverse else rows @ array @ cols.T


def _oracle(a, inverse=False):
    return _dctn(a.detach().double().cpu().numpy(), inverse)


def make_input(shape, dtype, device, layout="contiguous", seed=0):
    """A random input in ``layout``: contiguous, channels_last, or transposed (H, W strides swapped)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(device)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    return x


def check_dct_roundtrip(shape, dtype, device, layout="contiguous"):
    """dct2d and idct2d forward against scipy, and their backward (each the other's adjoint)."""
    x = make_input(shape, dtype, device, layout).requires_grad_(True)
    y = dct2d(x)
    assert y.dtype == dtype and y.shape == x.shape and y.is_contiguous()
    assert_close(y, _oracle(x), dtype, f"dct2d {tuple(shape)}")
    g = make_input(shape, dtype, device, seed=1)
    (grad,) = torch.autograd.grad(y, x, g)
    assert_close(grad, _oracle(g, inverse=True), dtype, f"dct2d backward {tuple(shape)}")

    c = make_input(shape, dtype, device, layout, seed=2).requires_grad_(True)
    z = idct2d(c)
    assert_close(z, _oracle(c, inverse=True), dtype, f"idct2d {tuple(shape)}")
    (grad,) = torch.autograd.grad(z, c, g)
    assert_close(grad, _oracle(g), dtype, f"idct2d backward {tuple(shape)}")


def freqs_for(height, width, k, seed=0):
    """K distinct (u, v) frequencies (fewer when the map has fewer than K positions)."""
    rng = np.random.default_rng(seed)
    picks = rng.permutation(height * width)[:k]
    return [(int(i) // width, int(i) % width) for i in picks]


def check_pool(shape, k, grouped, norm, dtype, device, layout="contiguous"):
    """freq_pool forward against the scipy coefficients, backward against scipy's inverse DCT."""
    batch, channels, height, width = shape
    freqs = freqs_for(height, width, k)
    k = len(freqs)
    x = make_input(shape, dtype, device, layout).requires_grad_(True)
    out = freq_pool(x, freqs, grouped=grouped, norm=norm)
    scale = 1.0 / np.sqrt(height * width) if norm == "mean" else 1.0
    coeffs = _oracle(x)
    picked = np.stack([coeffs[:, :, u, v] for u, v in freqs], axis=-1) * scale  # (B, C, K)
    group = np.arange(channels) // (channels // k) if grouped else None
    ref = picked[:, np.arange(channels), group] if grouped else picked
    assert out.dtype == dtype
    assert_close(out, ref, dtype, f"freq_pool {tuple(shape)} K={k} grouped={grouped} {norm} {layout}")

    g = make_input(out.shape[::-1], dtype, device, seed=3).transpose(0, -1)  # non-contiguous grad
    (grad,) = torch.autograd.grad(out, x, g)
    spectrum = np.zeros(shape)
    g64 = g.double().cpu().numpy() * scale
    for j, (u, v) in enumerate(freqs):
        if grouped:
            chans = np.nonzero(group == j)[0]
            spectrum[:, chans, u, v] = g64[:, chans]
        else:
            spectrum[:, :, u, v] = g64[:, :, j]
    ref_grad = _dctn(spectrum, inverse=True)
    assert grad.shape == x.shape and grad.dtype == dtype
    assert_close(grad, ref_grad, dtype, f"freq_pool backward {tuple(shape)} K={k} grouped={grouped} {norm}")


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
