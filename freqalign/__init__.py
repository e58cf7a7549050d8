"""freqalign: fast 2-D DCT frequency pooling and FreqAlign domain adaptation for BIQA.

>>> import torch, freqalign
>>> x = torch.randn(2, 16, 7, 7)
>>> freqalign.freq_pool(x, [(0, 0), (1, 2)], grouped=True).shape
torch.Size([2, 16])
"""
from .backend import backends, use_backend
from .basis import dct_matrix, grid_to_index, window, zigzag
from .nn import AdaptiveFreqPool2d, FreqPool, MultiSpectralAttention, add_attention, replace_gap
from .ops import dct2d, freq_pool, idct2d

__version__ = "0.1.0"


def __getattr__(name: str):
    """``load_scorer`` (``freqalign.scoring``) loads the model code on first use, so that
    ``import freqalign`` stays cheap."""
    if name == "load_scorer":
        from .scoring import load_scorer

        return load_scorer
    raise AttributeError(f"module 'freqalign' has no attribute {name!r}")


__all__ = ["dct2d", "idct2d", "freq_pool", "FreqPool", "AdaptiveFreqPool2d", "MultiSpectralAttention",
           "replace_gap", "add_attention", "use_backend", "backends", "window",
           "zigzag", "grid_to_index", "dct_matrix", "load_scorer", "__version__"]
