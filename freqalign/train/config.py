"""Deprecated: the config moved to ``freqalign.run.config`` (issue 25)."""
import warnings

from ..run.config import *  # noqa: F401,F403
from ..run.config import __all__  # noqa: F401

warnings.warn("freqalign.train.config is deprecated, use freqalign.run.config",
              DeprecationWarning, stacklevel=2)
