"""Evaluation in one place: predictions over a split (sharded over processes), the
label-free criteria and the probe during training, and ``freqalign eval`` / ``freqalign
score`` on a saved checkpoint."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..metrics import evaluate, srcc
from ..method.criteria import score_all
from ..method.model import build_model, check_grid
from ..method.search import SearchState, all_frequencies, probe_scores
from . import checkpoint, distributed
from .batches import crop_batch, eval_batches
from .config import config_from_dict

SPLITS = ("src_train", "tgt_train", "src_val", "tgt_val", "tgt_test")


@torch.no_grad()
def predict(model, dataset, indices, cfg, device, coeffs: bool = False) -> dict:
    """Scores, labels and GAP features (and all-frequency coefficients) over ``indices``,
    sharded over processes and gathered back in order."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) \
        if torch.distributed.is_initialized() else (0, 1)
    was = model.training
    model.eval()
    parts = {"pred": [], "true": [], "feat": [], "coeffs": [], "order": []}
    for images, scores, chunk in eval_batches(dataset, cfg.eval_batch_size, indices[rank::world]):
        f = model.features(crop_batch(images, cfg.image_size).to(device))
        score, gap = model.quality(f)
        parts["pred"].append(score.float().cpu())
        parts["feat"].append(gap.float().cpu())
        if coeffs:
            parts["coeffs"].append(all_frequencies(f, cfg.grid).float().cpu())
        parts["true"].append(scores)
        parts["order"].extend(chunk)
    model.train(was)
    local = {k: (torch.cat(v).numpy() if v and k != "order" else v) for k, v in parts.items()}
    gathered = distributed.gather(local)
    order = np.concatenate([np.asarray(g["order"], dtype=np.int64) for g in gathered])
    sort = np.argsort(order, kind="stable")
    out = {}
    for key in ("pred", "true", "feat") + (("coeffs",) if coeffs else ()):
        arrays = [g[key] for g in gathered if len(g[key])]
        out[key] = np.concatenate(arrays)[sort]
    return out


def evaluate_criteria(model, data, samples, cfg, device) -> tuple:
    """All criteria on the held-out splits, and the target-test SRCC (analysis only)."""
    r = {k: predict(model, data[k], samples[k], cfg, device) for k in samples}
    ev = {"src_train_feat": r["src_train"]["feat"], "tgt_train_feat": r["tgt_train"]["feat"],
          "src_val_feat": r["src_val"]["feat"], "src_val_pred": r["src_val"]["pred"],
          "src_val_true": r["src_val"]["true"], "tgt_val_feat": r["tgt_val"]["feat"],
          "tgt_val_pred": r["tgt_val"]["pred"], "tgt_val_true": r["tgt_val"]["true"]}
    scores = score_all(ev, cfg.domain_fit_steps)
    return scores, srcc(r["tgt_test"]["pred"], r["tgt_test"]["true"])


def run_probe(model, data, samples, cfg, device, search: SearchState, step: int) -> None:
    """Probe mode: score every position on frozen features (one all-frequency pass per split)."""
    r = {k: predict(model, data[k], samples[k], cfg, device, coeffs=True) for k in samples}
    coeffs = {k: v["coeffs"] for k, v in r.items()}
    labels = {k: v["true"] for k, v in r.items()}
    for pos, s in zip(search.positions,
                      probe_scores(coeffs, labels, search.positions, cfg.window_size,
                                   cfg.domain_fit_steps)):
        search.record(pos, "probe", s, s.pop("oracle_target_srcc"), step)


def load_model(path: str, device: str = "auto"):
    """``(model, config, checkpoint dict, device)`` rebuilt from checkpoint ``path``."""
    ck = checkpoint.load(path)
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
