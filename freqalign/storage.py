"""Torch files that hold data only: atomic saves, and loads that never run code.

Checkpoints and the embedded dataset cache hold tensors, numbers, strings, lists, tuples and
dicts, nothing else, so they load with ``torch.load(weights_only=True)``: a pickle that names
any other global (a class, or ``os.system``) is refused before anything of it runs.
"""
import os
import pickle
import re
import tempfile
import warnings

import torch

from .errors import CheckpointError, os_fault

SAFE_TYPES = "tensors, numbers, strings, lists, tuples and dicts"


def save(obj, path) -> None:
    """Write ``obj`` to a temporary file in the same folder, flush it to the disk, then rename:
    a reader never sees half a file, and concurrent writers never share a temporary name. A
    write that fails (a full disk, a read-only folder) is a ``TrainingError`` naming the path
    and the errno, with the file that was there before unchanged."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path), suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as fh:  # a file object: torch then raises the OSError itself
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; these are ordinary files
        os.replace(tmp, path)
    except OSError as exc:
        raise os_fault("cannot write", path, exc, "; the file there before is unchanged") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _why(exc: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed."""
    text = str(exc).strip()
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"refused to load: it refers to {named.group(1)} (only {SAFE_TYPES} are loaded: " \
               f"a file that names anything else could run code)"
    why = f"refused to load: not a torch file holding only {SAFE_TYPES}"
    if isinstance(exc, pickle.UnpicklingError) or not text:  # the unpickler's text is about torch
        return why
    return f"{why} ({type(exc).__name__}: {text.splitlines()[0].split('. ')[0]})"


def load(path):
    """``torch.load(path, weights_only=True)`` on the CPU; any failure is a ``CheckpointError``
    naming the file and why (whatever the unpickler raises, the file's content is at fault)."""
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise CheckpointError(f"{path}: {_why(exc)}") from exc


__all__ = ["save", "load", "SAFE_TYPES"]
