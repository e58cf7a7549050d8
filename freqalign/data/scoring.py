"""Deprecated: moved to ``freqalign.data.file_scores`` (issue 25)."""
import warnings

from .file_scores import expand_paths, format_table, save_scores, score_images  # noqa: F401

warnings.warn("freqalign.data.scoring is deprecated, use freqalign.data.file_scores",
              DeprecationWarning, stacklevel=2)
