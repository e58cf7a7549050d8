"""Atomic checkpoints with everything a bit-exact resume needs (model, optimiser, step, search
state, batch-stream positions, every RNG of every process); ``run.files`` says where a run
folder keeps them.

A checkpoint holds only tensors, numbers, strings, lists, tuples and dicts, so it loads with
``weights_only=True`` (``freqalign.storage``): a file that holds anything else is refused.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .. import storage
from ..errors import CheckpointError, ConfigError, MissingFileError


def _numpy_state() -> dict:
    """NumPy's global RNG state in safe types (its key array as an int64 tensor)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_state(state: dict) -> None:
    key = state["key"].numpy().astype(np.uint32)
    np.random.set_state((state["kind"], key, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def rng_state(generators: dict) -> dict:
    """Python, NumPy, torch (CPU and CUDA) global RNGs plus the trainer's named generators."""
    state = {"python": random.getstate(), "numpy": _numpy_state(),
             "torch": torch.get_rng_state(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: dict) -> None:
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def rank_rng(saved, rank: int, world: int) -> dict:
    """Process ``rank``'s RNG states from a checkpoint's ``rng``: a list with every process's
    (a dict, from single-process checkpoints of earlier versions, counts as one process)."""
    states = saved if isinstance(saved, list) else [saved]
    if len(states) != world:
        raise ConfigError(f"the checkpoint holds the random states of {len(states)} process(es) "
                          f"but this run has {world}: resume or fork it with {len(states)}")
    return states[rank]


def save(obj: dict, path: str) -> None:
    """Write atomically (a reader never sees half a file)."""
    storage.save(obj, path)


def load(path: str) -> dict:
    """A freqalign checkpoint (a dict with ``model`` and ``config``), loaded without running code.

    A missing file, a file that is not a torch file of plain data, or one that is not a
    freqalign checkpoint raises a user error naming the file.
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"no checkpoint at {path!r}")
    ck = storage.load(path)
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck:
        raise CheckpointError(f"{path}: not a freqalign checkpoint (no model/config)")
    return ck


__all__ = ["rng_state", "set_rng_state", "rank_rng", "save", "load"]
