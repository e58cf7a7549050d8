"""``freqalign eval`` and ``freqalign score``: a saved checkpoint's metrics on a dataset spec,
and its quality scores for image files."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from ..metrics import evaluate
from ..method.model import build_model, check_grid
from . import checkpoint, distributed
from .config import config_from_dict
from .loop import predict


def load_model(path: str, device: str = "auto"):
    """``(model, config, checkpoint dict, device)`` rebuilt from checkpoint ``path``."""
    ck = checkpoint.load(path)
    if "model" not in ck or "config" not in ck:
        raise ValueError(f"{path}: not a freqalign checkpoint (no model/config)")
    cfg = config_from_dict(ck["config"])
    _, _, dev = distributed.setup(device)
    model = build_model(cfg).to(dev)
    model.load_state_dict(ck["model"])
    check_grid(model, cfg)
    return model.eval(), cfg, ck, dev


def evaluate_checkpoint(path: str, dataset: str, device: str = "auto", batch_size: int = 128) -> dict:
    """Metrics (SRCC, KRCC, PLCC, PLCC after logistic fit, RMSE) of checkpoint ``path`` on all of
    ``dataset`` (central crops of the checkpoint's ``image_size``)."""
    from ..data.registry import open_dataset

    model, cfg, ck, dev = load_model(path, device)
    cfg.eval_batch_size = batch_size
    data = open_dataset(dataset, image_size=cfg.data_size or None, cache_dir=cfg.cache_dir or None,
                        seed=cfg.data_seed)
    out = predict(model, data, list(range(len(data))), cfg, dev)
    return {"checkpoint": path, "dataset": dataset, "n": len(data), "method": cfg.method,
            "step": ck.get("step"), **evaluate(out["pred"], out["true"])}


class QualityScorer(nn.Module):
    """The quality branch alone: images (B, 3, h, w) in [0, 1] -> scores (B,) in [0, 1]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[0]


def score_checkpoint(path: str, paths: Sequence[str], *, device: str = "auto", batch_size: int = 32,
                     image_size: int = 0, skip_bad: bool = False) -> List[Tuple[str, float]]:
    """``[(file, score), ...]`` for image files and folders, scored by checkpoint ``path`` on central
    crops of ``image_size`` (0: the checkpoint's training crop size)."""
    from ..data.scoring import score_images

    model, cfg, _, dev = load_model(path, device)
    return score_images(QualityScorer(model), paths, batch_size=batch_size, device=dev,
                        image_size=image_size or cfg.image_size, skip_bad=skip_bad,
                        progress=cfg.progress)
