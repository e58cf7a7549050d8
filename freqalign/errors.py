"""The package's own error types: user mistakes, as opposed to bugs.

The command line prints a ``FreqAlignError`` as one line with exit status 2; any other
exception is a bug and keeps its traceback. Each type also derives from the built-in type
that callers caught before it existed (``ValueError``, ``FileNotFoundError``, ``OSError``).
"""


class FreqAlignError(Exception):
    """A user mistake: a bad config, argument, dataset, file or checkpoint."""


class ConfigError(FreqAlignError, ValueError):
    """A bad config file, ``key=value`` override or command-line value."""


class DatasetError(FreqAlignError, ValueError):
    """A bad dataset spec, option, layout or label file."""


class CheckpointError(FreqAlignError, ValueError):
    """A checkpoint (or weights file) that is not ours, is damaged, or holds more than data."""


class TrainingError(FreqAlignError, RuntimeError):
    """A run that cannot go on: a non-finite loss, a disk fault, a lost process, a busy folder."""


class MissingFileError(FreqAlignError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnsupportedModelError(FreqAlignError, ValueError):
    """A model that ``replace_gap`` or ``add_attention`` cannot change (nothing to replace)."""


__all__ = ["FreqAlignError", "UnsupportedModelError", "ConfigError", "DatasetError", "CheckpointError",
           "TrainingError", "MissingFileError"]
