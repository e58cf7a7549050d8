"""The package's own error types: user mistakes and faults around a run (a full disk, a lost
process), as opposed to bugs.

The command line prints a ``FreqAlignError`` as one line with exit status 2; any other
exception is a bug and keeps its traceback. Each type also derives from the built-in type
that callers caught before it existed (``ValueError``, ``FileNotFoundError``, ``OSError``).
"""
import errno


class FreqAlignError(Exception):
    """A user mistake (a bad config, argument, dataset, file or checkpoint) or a fault around
    a run that the user must fix (``TrainingError``)."""


class ConfigError(FreqAlignError, ValueError):
    """A bad config file, ``key=value`` override or command-line value."""


class DatasetError(FreqAlignError, ValueError):
    """A bad dataset spec, option, layout or label file."""


class CheckpointError(FreqAlignError, ValueError):
    """A checkpoint (or weights file) that is not ours, is damaged, or holds more than data."""


class TrainingError(FreqAlignError, RuntimeError):
    """A run that cannot go on: a non-finite loss, a disk fault, a lost process, a busy folder."""


def os_fault(doing: str, path, exc: OSError, then: str = "") -> TrainingError:
    """One line for a failed file operation: what failed, on which path, the errno, ``then``."""
    name = errno.errorcode.get(exc.errno, "no errno") if exc.errno else "no errno"
    return TrainingError(f"{doing} {path}: {exc.strerror or exc} ({name}){then}")


class MissingFileError(FreqAlignError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnsupportedModelError(FreqAlignError, ValueError):
    """A model that ``replace_gap`` or ``add_attention`` cannot change (nothing to replace)."""


__all__ = ["FreqAlignError", "UnsupportedModelError", "ConfigError", "DatasetError", "CheckpointError",
           "TrainingError", "os_fault", "MissingFileError"]
