"""Deprecated: ``freqalign study --map`` moved to ``freqalign.train.study_map`` (issue 25)."""
import warnings

from .study_map import markdown  # noqa: F401
from .study_map import study_map as transfer_map  # noqa: F401

warnings.warn("freqalign.train.freq_map is deprecated, use freqalign.train.study_map "
              "(transfer_map is now study_map)", DeprecationWarning, stacklevel=2)
