"""Atomic checkpoints with everything a bit-exact resume needs (model, optimiser, step, search
state, batch-stream positions, every RNG)."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def rng_state(generators: dict) -> dict:
    """Python, NumPy, torch (CPU and CUDA) global RNGs plus the trainer's named generators."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def save(obj: dict, path: str) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    return torch.load(path, map_location="cpu", weights_only=False)
