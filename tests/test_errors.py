"""Bad input raises the documented error, naming the argument (inputs are zeros: only their
shapes and dtypes matter)."""
import pytest
import torch

import freqalign
from freqalign import FreqPool, dct2d, freq_pool, idct2d


@pytest.mark.parametrize("bad, error, match", [
    (torch.zeros(4, 7, 7), ValueError, "x must have 4 dimensions"),
    (torch.zeros(1, 2, 4, 7, 7), ValueError, "x must have 4 dimensions"),
    (torch.ones(2, 4, 7, 7, dtype=torch.int64), TypeError, "x must be a floating-point"),
    ([[1.0]], TypeError, "x must be a torch.Tensor"),
])
def test_freq_pool_rejects_bad_x(backend_name, bad, error, match):
    with pytest.raises(error, match=match):
        freq_pool(bad, [(0, 0)])


@pytest.mark.parametrize("freqs, error, match", [
    ([], ValueError, "freqs is empty"),
    (torch.zeros(0, 2, dtype=torch.int64), ValueError, "freqs is empty"),
    ([(7, 0)], ValueError, r"freqs entry \(7, 0\) is out of range for a 7x7"),
    ([(0, -1)], ValueError, "out of range"),
    (torch.tensor([[0.0, 1.0]]), TypeError, "freqs must be an integer"),
    (torch.tensor([0, 1]), ValueError, r"freqs must have shape \(K, 2\)"),
    (torch.zeros(5, 5, dtype=torch.bool), ValueError, "boolean mask must have the feature map's shape"),
    (torch.zeros(7, 7, dtype=torch.bool), ValueError, "freqs is empty"),
    ([(0.5, 1)], TypeError, "integer"),
    (3, TypeError, "freqs must be"),
])
def test_freq_pool_rejects_bad_freqs(backend_name, freqs, error, match):
    with pytest.raises(error, match=match):
        freq_pool(torch.zeros(2, 4, 7, 7), freqs, grouped=False)


def test_grouped_needs_k_to_divide_c(backend_name):
    with pytest.raises(ValueError, match=r"C=10 .* K=3 .* 10 % 3 != 0"):
        freq_pool(torch.zeros(2, 10, 7, 7), [(0, 0), (1, 1), (2, 2)], grouped=True)
    assert freq_pool(torch.zeros(2, 10, 7, 7), [(0, 0), (1, 1), (2, 2)], grouped=False).shape == (2, 10, 3)


def test_bad_norm():
    with pytest.raises(ValueError, match="norm must be"):
        freq_pool(torch.zeros(1, 1, 3, 3), [(0, 0)], norm="l2")
    with pytest.raises(ValueError, match="norm must be"):
        FreqPool(norm="sum")


def test_dct_rejects_bad_input(backend_name):
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        dct2d(torch.zeros(5))
    with pytest.raises(TypeError, match="coefficients must be a floating-point"):
        idct2d(torch.ones(3, 3, dtype=torch.int32))


def test_grid_collapse_on_small_maps_is_a_clear_error():
    pool = FreqPool(freqs=((0, 0), (0, 1)), grid=7)
    with pytest.raises(ValueError, match=r"\(0, 0\) and \(0, 1\) both map to index \(0, 0\) on a 3x3"):
        pool(torch.zeros(1, 2, 3, 3))
    assert pool(torch.zeros(1, 2, 7, 7)).shape == (1, 2)
    gap = FreqPool()  # (0, 0) cannot collapse: any size works, 1x1 included
    x = torch.randn(2, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(gap(x), x.flatten(1))  # one product by the weight 1.0: exact


def test_window_range_errors():
    with pytest.raises(ValueError, match="window position must be in 0..45"):
        freqalign.window(46, 4)
    with pytest.raises(ValueError, match="window size must be in 1..49"):
        freqalign.window(0, 0)
    with pytest.raises(ValueError, match="outside the 7x7 grid"):
        FreqPool(freqs=((7, 0),))
