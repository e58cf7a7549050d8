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


def load_scorer(checkpoint: str, device=None, crops: int = 0, image_size: int = 0):
    """A scorer for a trained checkpoint: call it with a (B, 3, h, w) tensor in [0, 1], a PIL
    image or image paths; it scores them as ``freqalign eval`` and ``freqalign score`` do (the
    mean over each image's ``eval_crops`` crops), on the checkpoint's device unless ``device``
    says otherwise. See ``freqalign.train.evaluate.Scorer``."""
    from .train.evaluate import load_scorer as load  # the trainer loads on first use only

    return load(checkpoint, device=device, crops=crops, image_size=image_size)


__all__ = ["dct2d", "idct2d", "freq_pool", "FreqPool", "AdaptiveFreqPool2d", "MultiSpectralAttention",
           "replace_gap", "add_attention", "use_backend", "backends", "window",
           "zigzag", "grid_to_index", "dct_matrix", "load_scorer", "__version__"]
