"""Deprecated: the checkpoint format moved to ``freqalign.run.checkpoint``, the run folder's
checkpoint names (``RunFiles``, ``run_file``) to ``freqalign.run.files`` (issue 25)."""
import warnings

from ..run.checkpoint import *  # noqa: F401,F403
from ..run.files import CheckpointFiles as RunFiles, run_file  # noqa: F401

warnings.warn("freqalign.train.checkpoint is deprecated, use freqalign.run.checkpoint and "
              "freqalign.run.files", DeprecationWarning, stacklevel=2)
