"""Frequency math: the DCT basis, the zigzag order, windows and the grid mapping."""
import numpy as np
import pytest
import scipy.fft
import torch

from freqalign.basis import dct_matrix, grid_to_index, pool_filters, window, zigzag
from numerics import UNIT_ROUNDOFF

# JPEG's zigzag scan of an 8x8 block as row-major indices (ITU-T T.81, figure 5).
JPEG_ZIGZAG_8X8 = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48,
                   41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15,
                   23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 14, 33])
def test_dct_matrix_matches_scipy_and_is_orthonormal(n):
    """Bounds (tests/numerics.py): an entry is a cosine of an argument below pi n carrying 4
    roundings, times a rounded scale: within 16 n u of exact; scipy's FFT of a unit vector within
    10 log2(2n) u. ``C C^T``: n products of entries <= sqrt(2/n) in size, each off by 16 n u,
    summed with gamma(n): within (2 * 16 n + n + 1) * u * 2 of the identity."""
    u = UNIT_ROUNDOFF[torch.float64]
    matrix = dct_matrix(n).numpy()
    scipy_matrix = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)
    np.testing.assert_allclose(matrix, scipy_matrix, rtol=0, atol=(16 * n + 10 * np.log2(2 * n)) * u)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(n), rtol=0, atol=(33 * n + 1) * u * 2)


def test_dct_matrix_is_cached_per_size_dtype_device():
    assert dct_matrix(9, torch.float32) is dct_matrix(9, torch.float32)
    assert dct_matrix(9, torch.float32) is not dct_matrix(9, torch.float64)


def test_zigzag_is_jpeg_order():
    assert [u * 8 + v for u, v in zigzag(8)] == JPEG_ZIGZAG_8X8
    assert zigzag(7)[0] == (0, 0) and len(set(zigzag(7))) == 49


def test_window_slides_along_zigzag():
    assert window(0, 1) == ((0, 0),)
    assert window(1, 3, grid=8) == ((0, 1), (1, 0), (2, 0))
    assert window(45, 4) == zigzag(7)[45:]


def test_grid_to_index():
    assert grid_to_index([(0, 0), (1, 2), (6, 6)], 14, 7) == ((0, 0), (2, 2), (12, 6))
    assert grid_to_index([(3, 5)], 7, 7) == ((3, 5),)
    assert grid_to_index([(0, 0)], 1, 1) == ((0, 0),)
    with pytest.raises(ValueError, match="smaller than the grid"):
        grid_to_index([(0, 0), (1, 0)], 4, 4)


def test_pool_filters_are_scipy_basis_images():
    filters = pool_filters([(2, 1), (0, 0)], 5, 4, norm="ortho").numpy()
    delta = np.zeros((5, 4))
    delta[2, 1] = 1.0
    # entries: products of two basis entries (16 n u each, n = 5); scipy's inverse FFT: 10 log2(40) u
    u = UNIT_ROUNDOFF[torch.float64]
    np.testing.assert_allclose(filters[0], scipy.fft.idctn(delta, type=2, norm="ortho"), rtol=0,
                               atol=(2 * 16 * 5 + 1 + 10 * np.log2(40)) * u)
    # sqrt(1/5) * sqrt(1/4) / sqrt(20): at most 7 roundings of a value near 1/20
    np.testing.assert_allclose(pool_filters([(0, 0)], 5, 4, norm="mean").numpy(), np.full((1, 5, 4), 1 / 20),
                               rtol=0, atol=8 * u / 20)
