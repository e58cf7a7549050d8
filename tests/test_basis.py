"""Frequency math: the DCT basis, the zigzag order, windows and the grid mapping."""
import numpy as np
import pytest
import scipy.fft
import torch

from freqalign.basis import dct_matrix, grid_to_index, pool_filters, window, zigzag

# JPEG's zigzag scan of an 8x8 block as row-major indices (ITU-T T.81, figure 5).
JPEG_ZIGZAG_8X8 = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48,
                   41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15,
                   23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


@pytest.mark.parametrize("n", [1, 2, 5, 7, 14, 33])
def test_dct_matrix_matches_scipy_and_is_orthonormal(n):
    matrix = dct_matrix(n).numpy()
    np.testing.assert_allclose(matrix, scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0), atol=1e-14)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(n), atol=1e-13)


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
    np.testing.assert_allclose(filters[0], scipy.fft.idctn(delta, type=2, norm="ortho"), atol=1e-14)
    np.testing.assert_allclose(pool_filters([(0, 0)], 5, 4, norm="mean").numpy(), np.full((1, 5, 4), 1 / 20),
                               atol=1e-15)
