"""freqalign's ``torch.nn`` layers and model helpers, in one namespace.

The layers live in modules that import one way: ``pooling`` (``FreqPool``,
``AdaptiveFreqPool2d``) <- ``attention`` (FcaNet's ``MultiSpectralAttention``) <- ``surgery``
(``replace_gap``, ``add_attention``); this module only re-exports them.
"""
from .attention import MultiSpectralAttention, fcanet_frequencies
from .errors import UnsupportedModelError
from .pooling import AdaptiveFreqPool2d, FreqPool
from .surgery import add_attention, replace_gap

__all__ = ["FreqPool", "AdaptiveFreqPool2d", "MultiSpectralAttention", "fcanet_frequencies",
           "replace_gap", "add_attention", "UnsupportedModelError"]
