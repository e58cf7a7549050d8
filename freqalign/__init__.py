"""freqalign: fast 2-D DCT frequency pooling and FreqAlign domain adaptation for BIQA.

>>> import torch, freqalign
>>> x = torch.randn(2, 16, 7, 7)
>>> freqalign.freq_pool(x, [(0, 0), (1, 2)], grouped=True).shape
torch.Size([2, 16])
"""
from .backend import backends, use_backend
from .basis import dct_matrix, grid_to_index, window, zigzag
from .nn import FreqPool
from .ops import dct2d, freq_pool, idct2d

__version__ = "0.1.0"

__all__ = ["dct2d", "idct2d", "freq_pool", "FreqPool", "use_backend", "backends", "window",
           "zigzag", "grid_to_index", "dct_matrix", "__version__"]
