"""Evaluation in one place: predictions over a split (sharded over processes), the
label-free criteria and the probe during training, and ``freqalign eval`` / ``freqalign
score`` / ``freqalign.load_scorer`` on a saved checkpoint.

Every prediction is made by ``crop_means``: an image's score (and features) is the mean over
its ``eval_crops`` grid of ``image_size`` crops (``batches.crop_grid``), so a score does not
depend on which pixels happen to be central.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..metrics import evaluate, srcc
from ..method.criteria import score_all
from ..method.model import build_model, check_grid
from ..method.search import SearchState, all_frequencies, probe_scores
from . import checkpoint, distributed
from .batches import eval_batches, grid_crops, open_images
from .config import config_from_dict

SPLITS = ("src_train", "tgt_train", "src_val", "tgt_val", "tgt_test")


@torch.no_grad()
def crop_means(model, images: list, size: int, crops: int, batch_size: int, device,
               grid: int = 0) -> dict:
    """Per image (a list of (3, h, w) tensors of any sizes), the mean over its ``crop_grid``
    crops of the score (``pred``), the GAP features (``feat``) and, with ``grid``, the
    all-frequency coefficients (``coeffs``); forward passes of at most ``batch_size`` crops."""
    stack, owner = grid_crops(images, size, crops)
    parts = {"pred": [], "feat": [], "coeffs": []}
    for chunk in stack.split(batch_size):
        f = model.features(chunk.to(device))
        score, gap = model.quality(f)
        parts["pred"].append(score.float().cpu())
        parts["feat"].append(gap.float().cpu())
        if grid:
            parts["coeffs"].append(all_frequencies(f, grid).float().cpu())
    counts = torch.bincount(owner, minlength=len(images)).float()
    out = {}
    for key, values in parts.items():
        if values:
            x = torch.cat(values)
            sums = torch.zeros((len(images),) + x.shape[1:]).index_add_(0, owner, x)
            out[key] = sums / counts.view((-1,) + (1,) * (x.dim() - 1))
    return out


@torch.no_grad()
def predict(model, dataset, indices, cfg, device, coeffs: bool = False) -> dict:
    """Scores, labels and GAP features (and all-frequency coefficients) over ``indices``, each
    the mean over the image's ``eval_crops`` crops; sharded over processes and gathered back in
    order."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) \
        if torch.distributed.is_initialized() else (0, 1)
    was = model.training
    model.eval()
    parts = {"pred": [], "true": [], "feat": [], "coeffs": [], "order": []}
    for images, scores, chunk in eval_batches(dataset, cfg.eval_batch_size, indices[rank::world]):
        means = crop_means(model, images, cfg.image_size, cfg.eval_crops, cfg.eval_batch_size,
                           device, cfg.grid if coeffs else 0)
        for key, value in means.items():
            parts[key].append(value)
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


def load_model(path: str, device: Optional[str] = None):
    """``(model, config, checkpoint dict, device)`` rebuilt from checkpoint ``path``, on
    ``device`` (None: the checkpoint's own ``device`` setting, e.g. auto)."""
    ck = checkpoint.load(path)
    cfg = config_from_dict(ck["config"])
    _, _, dev = distributed.setup(device or cfg.device)
    model = build_model(cfg).to(dev)
    model.load_state_dict(ck["model"])
    check_grid(model, cfg)
    return model.eval(), cfg, ck, dev


def evaluate_checkpoint(path: str, dataset: str, device: Optional[str] = None,
                        batch_size: int = 128, crops: int = 0) -> dict:
    """Metrics (SRCC, KRCC, PLCC, PLCC after logistic fit, RMSE) of checkpoint ``path`` on all of
    ``dataset``, read as in training (``open_images``), each image scored by the mean over its
    ``crops`` grid crops (0: the checkpoint's ``eval_crops``)."""
    model, cfg, ck, dev = load_model(path, device)
    cfg.eval_batch_size, cfg.eval_crops = batch_size, crops or cfg.eval_crops
    data = open_images(dataset, cfg)
    out = predict(model, data, list(range(len(data))), cfg, dev)
    return {"checkpoint": path, "dataset": dataset, "n": len(data), "method": cfg.method,
            "step": ck.get("step"), "eval_crops": cfg.eval_crops,
            **evaluate(out["pred"], out["true"])}


class Scorer(nn.Module):
    """A trained model's quality scores in [0, 1] (higher = better), computed as ``freqalign
    eval`` computes them: the mean over each image's ``crops`` grid of ``image_size`` crops.

    Call it with a (B, 3, h, w) tensor in [0, 1] (scored at its own resolution) for a (B,)
    tensor, a PIL image for a float, or a path, a folder or a list of them for
    ``[(file, score), ...]`` (files and PIL images are first resized as the training data
    were: ``fit_size(data_size, image_size)``). Runs on the model's device.
    """

    def __init__(self, model: nn.Module, cfg, crops: int = 0, image_size: int = 0):
        super().__init__()
        self.model, self.cfg = model.eval(), cfg
        self.crops, self.image_size = crops or cfg.eval_crops, image_size or cfg.image_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, images):
        from PIL import Image

        if isinstance(images, torch.Tensor):
            return self.score_batch(images)
        if isinstance(images, Image.Image):
            return self.score_image(images)
        if isinstance(images, (str, os.PathLike, list, tuple)):
            return self.score_paths([images] if isinstance(images, (str, os.PathLike)) else images)
        raise TypeError(f"score a (B, 3, h, w) tensor, a PIL image or paths, not "
                        f"{type(images).__name__}")

    def score_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Scores (B,) of a (B, 3, h, w) batch in [0, 1], on the batch's device."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, h, w) batch, got shape {tuple(images.shape)}")
        means = crop_means(self.model, list(images), self.image_size, self.crops,
                           self.cfg.eval_batch_size, self.device)
        return means["pred"].to(images.device)

    def score_image(self, image) -> float:
        """The score of one PIL image."""
        from ..data.files import fit_size, pil_to_tensor

        img = fit_size(image.convert("RGB"), self.cfg.data_size or None, self.image_size)
        return float(self.score_batch(pil_to_tensor(img)[None])[0])

    def score_paths(self, paths: Sequence[str], *, batch_size: int = 32, skip_bad: bool = False,
                    progress: bool = False) -> List[Tuple[str, float]]:
        """``[(file, score), ...]`` for image files and folders (expanded recursively, sorted);
        ``skip_bad`` leaves unreadable images out, with a warning."""
        from ..data.scoring import score_images

        return score_images(self, paths, batch_size=batch_size, device=self.device,
                            image_size=None, skip_bad=skip_bad, progress=progress,
                            max_side=self.cfg.data_size or None, min_side=self.image_size)


def load_scorer(path: str, device: Optional[str] = None, crops: int = 0,
                image_size: int = 0) -> Scorer:
    """A ``Scorer`` for checkpoint ``path`` on ``device`` (None: the checkpoint's own setting,
    e.g. auto = CUDA when visible), averaging ``crops`` crops of ``image_size`` (0: the
    checkpoint's ``eval_crops`` and ``image_size``)."""
    model, cfg, _, _ = load_model(path, device)
    return Scorer(model, cfg, crops, image_size)
