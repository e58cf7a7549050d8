"""A trained model rebuilt from its checkpoint: what scoring, evaluation and the frequency map
start from."""
from __future__ import annotations

from typing import Optional

from ..method.model import build_model, check_grid
from . import checkpoint
from .config import config_from_dict
from .device import setup
from .vocabulary import Method


def moving_grid(cfg) -> Optional[int]:
    """The frequency grid the discriminator's window moves on: FreqAlign's ``grid``; None for
    the baselines (they pool at GAP only)."""
    return cfg.grid if cfg.method == Method.FREQALIGN else None


def load_model(path: str, device: Optional[str] = None):
    """``(model, config, checkpoint dict, device)`` rebuilt from checkpoint ``path``, on
    ``device`` (None: the checkpoint's own ``device`` setting, e.g. auto)."""
    ck = checkpoint.load(path)
    cfg = config_from_dict(ck["config"])
    _, _, dev = setup(device or cfg.device)
    model = build_model(cfg).to(dev)
    model.load_state_dict(ck["model"])
    check_grid(model, cfg.image_size, moving_grid(cfg))
    return model.eval(), cfg, ck, dev


__all__ = ["moving_grid", "load_model"]
