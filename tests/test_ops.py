"""The public ops on every CPU backend against float64 scipy.fft.dctn (the independent oracle).

Every comparison is within its worst-case rounding bound (tests/numerics.py, built by
tests/kernel_checks.py for the backend under test); autocast is tests/test_autocast.py.
"""
import warnings

import numpy as np
import pytest
import scipy.fft
import torch

import freqalign
from freqalign import dct2d, freq_pool, idct2d
from kernel_checks import assert_dct, check_pool_backward, check_pool_forward, dct_error
from numerics import assert_within, bound, dct_magnitude, mean_difference_bound, oracle_error, randn

SIZES = [(1, 1), (3, 5), (7, 7), (13, 9), (32, 32), (56, 56)]


def random_freqs(height, width, k, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(height)), int(rng.integers(width))) for _ in range(k)]


@pytest.mark.parametrize("size", SIZES)
def test_dct2d_matches_scipy(backend_name, size):
    x = randn(2, 3, *size, seed=1)
    assert_dct(dct2d(x), x, backend_name, False, f"dct2d {size}")


@pytest.mark.parametrize("size", SIZES)
def test_idct2d_inverts_dct2d(backend_name, size):
    """idct2d of scipy's coefficients within idct2d's bound; the round trip within the bound of
    ``idct2d(y + e) = x + idct2d(e) + e'``: dct2d's error ``|e| <= r M`` carried through
    ``|C|^T . |C|``, plus idct2d's own error on ``|y| + r M``."""
    x = randn(3, *size, seed=2)
    coeffs = torch.from_numpy(scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)))
    assert_dct(idct2d(coeffs), coeffs, backend_name, True, f"idct2d {size}")
    x64, rel = x.numpy(), dct_error(backend_name, torch.float64, *size)
    carried = rel * dct_magnitude(x64)
    limit = dct_magnitude(carried, inverse=True) + bound(
        dct_magnitude(np.abs(coeffs.numpy()) + carried, inverse=True), x64, rel, torch.float64,
        oracle=oracle_error(x64) + oracle_error(coeffs.numpy()))
    assert_within(idct2d(dct2d(x)), x64, limit, f"round trip {size}")


def test_dct2d_any_leading_shape(backend_name):
    x = randn(2, 3, 5, 6, 7, seed=3)
    assert_dct(dct2d(x), x, backend_name, False, "dct2d 5-D")
    y = randn(6, 7, seed=4)
    assert_dct(dct2d(y), y, backend_name, False, "dct2d 2-D")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("norm", ["ortho", "mean"])
def test_freq_pool_matches_scipy(backend_name, size, grouped, norm):
    k = 3
    x = randn(5, 6, *size, seed=5)
    freqs = random_freqs(*size, k, seed=size[0] * 100 + size[1])
    out = freq_pool(x, freqs, grouped=grouped, norm=norm)
    assert out.shape == ((5, 6) if grouped else (5, 6, k))
    check_pool_forward(out, x, freqs, grouped, norm, backend_name, f"freq_pool {size} {grouped} {norm}")


def test_freq_pool_accepts_index_tensor_and_mask(backend_name):
    x = randn(2, 4, 9, 11, seed=6)
    mask = torch.zeros(9, 11, dtype=torch.bool)
    mask[0, 0] = mask[2, 7] = mask[8, 1] = mask[4, 4] = True
    row_major = [(0, 0), (2, 7), (4, 4), (8, 1)]
    expected = freq_pool(x, row_major, grouped=False)
    check_pool_forward(expected, x, row_major, False, "ortho", backend_name, "freqs as pairs")
    assert torch.equal(freq_pool(x, mask, grouped=False), expected)
    assert torch.equal(freq_pool(x, torch.tensor(row_major, dtype=torch.int64), grouped=False), expected)


def test_mean_norm_dc_is_global_average_pooling(backend_name):
    """fp32: within ``numerics.mean_difference_bound`` of ``x.mean`` (two fp32 means)."""
    x = randn(4, 10, 13, 9, seed=7, dtype=torch.float32)
    out = freq_pool(x, [(0, 0)], grouped=True, norm="mean")
    limit = mean_difference_bound(13 * 9) * x.double().abs().mean((2, 3))
    assert ((out.double() - x.mean((2, 3)).double()).abs() <= limit).all()


# gradcheck's own tolerances (float64 central differences, atol 1e-5, rtol 1e-3): the ops are
# linear, so the finite differences are exact up to float64 rounding, far inside them.
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_gradcheck(backend_name, grouped):
    x = randn(2, 4, 5, 3, seed=8).requires_grad_(True)
    freqs = [(0, 0), (4, 2)]
    assert torch.autograd.gradcheck(lambda t: freq_pool(t, freqs, grouped=grouped), (x,))
    assert torch.autograd.gradgradcheck(lambda t: freq_pool(t, freqs, grouped=grouped), (x,))


def test_dct_gradcheck(backend_name):
    x = randn(2, 3, 5, 4, seed=9).requires_grad_(True)
    assert torch.autograd.gradcheck(dct2d, (x,))
    assert torch.autograd.gradcheck(idct2d, (x,))
    assert torch.autograd.gradgradcheck(dct2d, (x,))


def test_freq_pool_backward_matches_oracle(backend_name):
    """grad_x[b, c] = sum_k grad[b, c, k] * B_k, with the basis taken from scipy (idctn of a delta)."""
    x = randn(3, 4, 6, 5, seed=10).requires_grad_(True)
    freqs = [(1, 2), (5, 0)]
    grad = randn(3, 4, 2, seed=11)
    freq_pool(x, freqs, grouped=False).backward(grad)
    check_pool_backward(x.grad, grad, freqs, False, "ortho", backend_name, "freq_pool backward")


@pytest.mark.parametrize("layout", ["channels_last", "sliced", "expanded_batch"])
def test_non_contiguous_inputs(backend_name, layout):
    base = randn(3, 8, 14, 13, seed=12)
    if layout == "channels_last":
        x = base.to(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = randn(3, 16, 20, 17, seed=13)[:, ::2, 3:17, 2:15]
    else:
        x = base[:1].expand(3, -1, -1, -1)
    assert not x.is_contiguous()
    freqs = [(0, 0), (3, 4), (13, 12), (7, 1)]
    for grouped in (True, False):
        check_pool_forward(freq_pool(x, freqs, grouped=grouped), x, freqs, grouped, "ortho", backend_name,
                           f"freq_pool {layout} grouped={grouped}")
    assert_dct(dct2d(x), x, backend_name, False, f"dct2d {layout}")
    leaf = x.detach().clone().requires_grad_(True)  # fast_mode: a random projection, not 4368 columns
    assert torch.autograd.gradcheck(lambda t: freq_pool(t, freqs[:2], grouped=True), (leaf,), fast_mode=True)


def test_nan_in_nan_out(backend_name):
    x = randn(2, 4, 7, 7, seed=14, dtype=torch.float32)
    x[1, 2, 3, 3] = float("nan")
    pooled = freq_pool(x, [(0, 0), (2, 1)], grouped=False)
    assert torch.isnan(pooled[1, 2]).all() and not torch.isnan(pooled[0]).any()
    assert torch.isnan(dct2d(x)[1, 2]).all()


def test_backend_selection(monkeypatch):
    x = randn(2, 4, 7, 7, seed=15)
    for name in ("torch", "auto"):
        with freqalign.use_backend(name):
            check_pool_forward(freq_pool(x, [(1, 1)]), x, [(1, 1)], True, "ortho", name, name)
    with pytest.raises(ValueError, match="unknown backend"):
        with freqalign.use_backend("tpu"):
            pass
    monkeypatch.setenv("FREQALIGN_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="FREQALIGN_BACKEND"):
        freq_pool(x, [(1, 1)])
    monkeypatch.setenv("FREQALIGN_BACKEND", "torch")
    with freqalign.use_backend("torch"):
        expected = freq_pool(x, [(1, 1)])
    assert torch.equal(freq_pool(x, [(1, 1)]), expected)
    report = freqalign.backends()
    assert set(report) == {"torch", "cpu", "cuda", "triton"} and report["torch"] == "available"


def _unbuilt_backend():
    raise ImportError("freqalign._C not built")


def test_missing_backend_falls_back_with_one_warning():
    from freqalign import backend

    backend.register_backend("unbuilt", _unbuilt_backend)
    try:
        x = randn(1, 2, 3, 3, seed=16, dtype=torch.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with freqalign.use_backend("unbuilt"):
                first = freq_pool(x, [(0, 0)])
                second = freq_pool(x, [(0, 0)])
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "not built" in messages[0] and "pure-PyTorch" in messages[0]
        check_pool_forward(first, x, [(0, 0)], True, "ortho", "torch", "the torch fallback")
        assert torch.equal(second, first)
        assert "not built" in freqalign.backends()["unbuilt"]
    finally:
        backend.unregister_backend("unbuilt")
    assert "unbuilt" not in freqalign.backends()


def test_checked_freqs_are_remembered_per_size_and_errors_never():
    """Tuples of int pairs take a cached check (ops/validate.py); it answers as the full check does."""
    from freqalign.ops.validate import parse_freqs

    pairs = ((6, 6), (0, 1))
    assert parse_freqs(pairs, 7, 7) == parse_freqs([[6, 6], [0, 1]], 7, 7) == pairs
    for _ in range(2):  # the same freqs at a smaller size: out of range every time
        with pytest.raises(ValueError, match=r"\(6, 6\) is out of range for a 6x6"):
            parse_freqs(pairs, 6, 6)
    with pytest.raises(ValueError, match="freqs is empty"):
        parse_freqs((), 7, 7)
    with pytest.raises(TypeError, match="integer"):
        parse_freqs(((0.5, 1),), 7, 7)
