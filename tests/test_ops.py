"""The public ops on every CPU backend against float64 scipy.fft.dctn (the independent oracle)."""
import warnings

import numpy as np
import pytest
import scipy.fft
import torch

import freqalign
from freqalign import dct2d, freq_pool, idct2d

SIZES = [(1, 1), (3, 5), (7, 7), (13, 9), (32, 32), (56, 56)]


def oracle_dct(x: torch.Tensor) -> np.ndarray:
    return scipy.fft.dctn(x.detach().double().numpy(), type=2, norm="ortho", axes=(-2, -1))


def oracle_pool(x, freqs, grouped, norm):
    coeffs = oracle_dct(x)
    height, width = x.shape[-2:]
    scale = 1.0 / np.sqrt(height * width) if norm == "mean" else 1.0
    picked = np.stack([coeffs[:, :, u, v] for u, v in freqs], axis=-1) * scale  # (B, C, K)
    if not grouped:
        return picked
    group = x.shape[1] // len(freqs)
    return np.stack([picked[:, c, c // group] for c in range(x.shape[1])], axis=1)


def random_freqs(height, width, k, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(height)), int(rng.integers(width))) for _ in range(k)]


@pytest.mark.parametrize("size", SIZES)
def test_dct2d_matches_scipy(backend_name, size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    np.testing.assert_allclose(dct2d(x).numpy(), oracle_dct(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", SIZES)
def test_idct2d_inverts_dct2d(backend_name, size):
    x = torch.randn(3, *size, dtype=torch.float64)
    np.testing.assert_allclose(idct2d(dct2d(x)).numpy(), x.numpy(), rtol=1e-10, atol=1e-10)
    coeffs = torch.from_numpy(oracle_dct(x))
    np.testing.assert_allclose(idct2d(coeffs).numpy(), x.numpy(), rtol=1e-10, atol=1e-10)


def test_dct2d_any_leading_shape(backend_name):
    x = torch.randn(2, 3, 5, 6, 7, dtype=torch.float64)
    np.testing.assert_allclose(dct2d(x).numpy(), oracle_dct(x), rtol=1e-10, atol=1e-10)
    y = torch.randn(6, 7, dtype=torch.float64)
    np.testing.assert_allclose(dct2d(y).numpy(), oracle_dct(y), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("norm", ["ortho", "mean"])
def test_freq_pool_matches_scipy(backend_name, size, grouped, norm):
    k = 3
    x = torch.randn(5, 6, *size, dtype=torch.float64)
    freqs = random_freqs(*size, k, seed=size[0] * 100 + size[1])
    out = freq_pool(x, freqs, grouped=grouped, norm=norm)
    assert out.shape == ((5, 6) if grouped else (5, 6, k))
    np.testing.assert_allclose(out.numpy(), oracle_pool(x, freqs, grouped, norm), rtol=1e-10, atol=1e-10)


def test_freq_pool_accepts_index_tensor_and_mask(backend_name):
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    mask = torch.zeros(9, 11, dtype=torch.bool)
    mask[0, 0] = mask[2, 7] = mask[8, 1] = mask[4, 4] = True
    row_major = [(0, 0), (2, 7), (4, 4), (8, 1)]
    expected = oracle_pool(x, row_major, False, "ortho")
    np.testing.assert_allclose(freq_pool(x, mask, grouped=False).numpy(), expected, atol=1e-10)
    as_tensor = torch.tensor(row_major, dtype=torch.int64)
    np.testing.assert_allclose(freq_pool(x, as_tensor, grouped=False).numpy(), expected, atol=1e-10)


def test_mean_norm_dc_is_global_average_pooling(backend_name):
    x = torch.randn(4, 10, 13, 9)
    out = freq_pool(x, [(0, 0)], grouped=True, norm="mean")
    torch.testing.assert_close(out, x.mean((2, 3)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_gradcheck(backend_name, grouped):
    x = torch.randn(2, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    freqs = [(0, 0), (4, 2)]
    assert torch.autograd.gradcheck(lambda t: freq_pool(t, freqs, grouped=grouped), (x,))
    assert torch.autograd.gradgradcheck(lambda t: freq_pool(t, freqs, grouped=grouped), (x,))


def test_dct_gradcheck(backend_name):
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(dct2d, (x,))
    assert torch.autograd.gradcheck(idct2d, (x,))
    assert torch.autograd.gradgradcheck(dct2d, (x,))


def test_freq_pool_backward_matches_oracle(backend_name):
    """grad_x[b, c] = sum_k grad[b, c, k] * B_k, with the basis taken from scipy (idctn of a delta)."""
    x = torch.randn(3, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    freqs = [(1, 2), (5, 0)]
    grad = torch.randn(3, 4, 2, dtype=torch.float64)
    freq_pool(x, freqs, grouped=False).backward(grad)
    bases = []
    for u, v in freqs:
        delta = np.zeros((6, 5))
        delta[u, v] = 1.0
        bases.append(scipy.fft.idctn(delta, type=2, norm="ortho"))
    expected = np.einsum("bck,khw->bchw", grad.numpy(), np.stack(bases))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "expanded_batch"])
def test_non_contiguous_inputs(backend_name, layout):
    base = torch.randn(3, 8, 14, 13, dtype=torch.float64)
    if layout == "channels_last":
        x = base.to(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.randn(3, 16, 20, 17, dtype=torch.float64)[:, ::2, 3:17, 2:15]
    else:
        x = base[:1].expand(3, -1, -1, -1)
    assert not x.is_contiguous()
    freqs = [(0, 0), (3, 4), (13, 12), (7, 1)]
    for grouped in (True, False):
        np.testing.assert_allclose(freq_pool(x, freqs, grouped=grouped).numpy(),
                                   oracle_pool(x, freqs, grouped, "ortho"), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dct2d(x).numpy(), oracle_dct(x), rtol=1e-10, atol=1e-10)
    leaf = x.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: freq_pool(t, freqs[:2], grouped=True), (leaf,))


# Half-precision tolerances: inputs are rounded to fp16/bf16 first, the kernels accumulate in
# fp32, and the output is rounded once more; bf16 has an 8-bit mantissa (rel. step 2^-8).
HALF_TOLERANCES = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_under_autocast(backend_name, dtype):
    x = torch.randn(4, 6, 14, 14).to(dtype)
    freqs = [(0, 0), (1, 3), (9, 2)]
    reference_pool = oracle_pool(x.double(), freqs, True, "ortho")
    reference_dct = oracle_dct(x.double())
    with torch.autocast("cpu", dtype=dtype):
        pooled = freq_pool(x, freqs, grouped=True)
        coeffs = dct2d(x)
    assert pooled.dtype == dtype and coeffs.dtype == dtype
    scale = np.abs(reference_dct).max()
    tol = HALF_TOLERANCES[dtype]
    assert np.abs(pooled.double().numpy() - reference_pool).max() <= tol * scale
    assert np.abs(coeffs.double().numpy() - reference_dct).max() <= tol * scale
    x.requires_grad_(True)
    freq_pool(x, freqs, grouped=False).sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


def test_nan_in_nan_out(backend_name):
    x = torch.randn(2, 4, 7, 7)
    x[1, 2, 3, 3] = float("nan")
    pooled = freq_pool(x, [(0, 0), (2, 1)], grouped=False)
    assert torch.isnan(pooled[1, 2]).all() and not torch.isnan(pooled[0]).any()
    assert torch.isnan(dct2d(x)[1, 2]).all()


def test_backend_selection(monkeypatch):
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    reference = freq_pool(x, [(1, 1)])
    for name in ("torch", "auto"):
        with freqalign.use_backend(name):
            torch.testing.assert_close(freq_pool(x, [(1, 1)]), reference)
    with pytest.raises(ValueError, match="unknown backend"):
        with freqalign.use_backend("tpu"):
            pass
    monkeypatch.setenv("FREQALIGN_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="FREQALIGN_BACKEND"):
        freq_pool(x, [(1, 1)])
    monkeypatch.setenv("FREQALIGN_BACKEND", "torch")
    torch.testing.assert_close(freq_pool(x, [(1, 1)]), reference)
    report = freqalign.backends()
    assert set(report) == {"torch", "cpu", "cuda", "triton"} and report["torch"] == "available"


def _unbuilt_backend():
    raise ImportError("freqalign._C not built")


def test_missing_backend_falls_back_with_one_warning(monkeypatch):
    from freqalign import backend

    monkeypatch.setattr(backend, "BACKEND_NAMES", backend.BACKEND_NAMES + ("unbuilt",))
    backend.register_backend("unbuilt", _unbuilt_backend)
    x = torch.randn(1, 2, 3, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with freqalign.use_backend("unbuilt"):
            first = freq_pool(x, [(0, 0)])
            second = freq_pool(x, [(0, 0)])
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "not built" in messages[0] and "pure-PyTorch" in messages[0]
    torch.testing.assert_close(first, x.mean((2, 3)) * 3)
    torch.testing.assert_close(second, first)
    assert "not built" in freqalign.backends()["unbuilt"]
