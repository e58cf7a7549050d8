"""Scoring images with a trained model: the evaluation crop grid, crop means, and ``Scorer`` /
``load_scorer`` (what ``freqalign.load_scorer`` returns and ``freqalign score`` runs).

Every score is made by ``crop_means``: an image's score (and features) is the mean over its
``crop_grid`` of ``image_size`` crops, so a score does not depend on which pixels happen to be
central. Training, evaluation and scoring all use it.
"""
from __future__ import annotations

import math
import os
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import ConfigError
from .method.stem_cache import first_views
from .run.load import load_model


def check_fits(h: int, w: int, size: int) -> None:
    """A clear error when an ``h`` x ``w`` image is too small for ``size`` crops."""
    if h < size or w < size:
        raise ConfigError(f"image_size={size} is larger than a dataset image ({h}x{w}); "
                          f"use a smaller image_size")


def grid_shape(n: int, free_h: int, free_w: int) -> Tuple[int, int]:
    """``(rows, cols)`` with ``rows * cols == n`` whose ratio cols / rows is closest to the ratio
    of the positions a crop can take across and down, ``(free_w + 1) / (free_h + 1)`` (so a
    side with no room to move gets one row or column)."""
    shapes = [(r, n // r) for r in range(1, n + 1) if n % r == 0]
    aspect = (free_w + 1) / (free_h + 1)
    return min(shapes, key=lambda rc: abs(math.log(rc[1] / rc[0] / aspect)))


def crop_grid(h: int, w: int, size: int, n: int) -> List[Tuple[int, int]]:
    """Top-left corners of the ``n`` evaluation crops of an ``h`` x ``w`` image: a
    ``grid_shape`` grid spanning the image from edge to edge (``n = 1``: the centre crop).
    Crops that coincide are kept once, so an image of ``size`` has one."""
    check_fits(h, w, size)
    rows, cols = grid_shape(n, h - size, w - size)

    def spread(free: int, k: int) -> List[int]:
        return [free // 2] if k == 1 else sorted({free * i // (k - 1) for i in range(k)})

    return [(top, left) for top in spread(h - size, rows) for left in spread(w - size, cols)]


def grid_crops(images: list, size: int, n: int):
    """``(crops (M, 3, size, size), owner (M,))``: every image's ``crop_grid`` crops, stacked,
    and the index of the image each crop came from."""
    crops, owner = [], []
    for i, img in enumerate(images):
        for top, left in crop_grid(*img.shape[-2:], size, n):
            crops.append(img[..., top:top + size, left:left + size])
            owner.append(i)
    return torch.stack(crops), torch.tensor(owner, dtype=torch.long)


@torch.no_grad()
def crop_means(model, images: list, size: int, crops: int, batch_size: int, device,
               coeffs: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> dict:
    """Per image (a list of (3, h, w) tensors of any sizes), the mean over its ``crop_grid``
    crops of the score (``pred``), the GAP features (``feat``) and, with ``coeffs`` (a function
    of the backbone features), of its values (``coeffs``); forward passes of at most
    ``batch_size`` crops."""
    if getattr(model, "from_stem", False):  # cached stem outputs: view 0, the image itself
        stack, owner = first_views(images), torch.arange(len(images))
    else:
        stack, owner = grid_crops(images, size, crops)
    parts = {"pred": [], "feat": [], "coeffs": []}
    for chunk in stack.split(batch_size):
        f = model.features(chunk.to(device))
        score, gap = model.quality(f)
        parts["pred"].append(score.float().cpu())
        parts["feat"].append(gap.float().cpu())
        if coeffs is not None:
            parts["coeffs"].append(coeffs(f).float().cpu())
    counts = torch.bincount(owner, minlength=len(images)).float()
    out = {}
    for key, values in parts.items():
        if values:
            x = torch.cat(values)
            sums = torch.zeros((len(images),) + x.shape[1:]).index_add_(0, owner, x)
            out[key] = sums / counts.view((-1,) + (1,) * (x.dim() - 1))
    return out


# integer image dtypes and the value of full intensity (torchvision's convention: to_dtype(scale=True))
IMAGE_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}


def as_images(images: torch.Tensor) -> torch.Tensor:
    """An image tensor as the model takes it: (B, 3, h, w) floating point in [0, 1].

    uint8 (what ``torchvision.io.read_image`` returns) and uint16 are divided by their full
    intensity (255, 65535); floating-point tensors are taken as they are, in [0, 1]. (3, h, w) is
    one image; one channel is grey, scored as its RGB equivalent (the channel repeated). Any
    other dtype or shape is a ``TypeError`` / ``ValueError`` saying what is expected."""
    if images.dtype in IMAGE_MAX:
        images = images.float() / IMAGE_MAX[images.dtype]
    elif not images.is_floating_point():
        raise TypeError(f"image tensors must be uint8 (0..255), uint16 (0..65535) or floating point "
                        f"in [0, 1], got dtype {images.dtype}")
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected a (B, 3, h, w) batch or a (3, h, w) image (1 channel: grey), "
                         f"got shape {tuple(images.shape)}")
    return images.expand(-1, 3, -1, -1)


class Scorer(nn.Module):
    """A trained model's quality scores in [0, 1] (higher = better), computed as ``freqalign
    eval`` computes them: the mean over each image's ``crops`` grid of ``image_size`` crops.

    What it takes, and returns (tensors are scored at their own resolution; files and PIL
    images are first resized as the training data were: ``fit_size(data_size, image_size)``):

    - a (B, 3, h, w) tensor: a (B,) tensor of scores, on the tensor's device;
    - a (3, h, w) tensor, a PIL image or an image file's path: a float;
    - a folder, or a list of paths and folders: ``[(file, score), ...]`` (folders expanded
      recursively, sorted).

    Tensors are uint8 (0..255, as ``torchvision.io.read_image`` returns them), uint16 or
    floating point in [0, 1]; one channel is grey (``as_images``). Runs on the model's device.
    ``metric`` names the scores (``freqalign:METHOD``), and higher scores are better.
    """

    higher_is_better = True

    def __init__(self, model: nn.Module, cfg, crops: int = 0, image_size: int = 0):
        super().__init__()
        self.model, self.cfg = model.eval(), cfg
        self.crops, self.image_size = crops or cfg.eval_crops, image_size or cfg.image_size

    @property
    def metric(self) -> str:
        return f"freqalign:{self.cfg.method}"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, images):
        from PIL import Image

        if isinstance(images, torch.Tensor):
            scores = self.score_batch(images)
            return float(scores[0]) if images.dim() == 3 else scores
        if isinstance(images, Image.Image):
            return self.score_image(images)
        if isinstance(images, (str, os.PathLike)) and not os.path.isdir(images):
            return self.score_paths([images])[0][1]
        if isinstance(images, (str, os.PathLike, list, tuple)):
            return self.score_paths([images] if isinstance(images, (str, os.PathLike)) else images)
        raise TypeError(f"score a (B, 3, h, w) tensor, a PIL image or paths, not "
                        f"{type(images).__name__}")

    def score_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Scores (B,) of a (B, 3, h, w) batch (or (1,) of one image; ``as_images`` says which
        dtypes), on the batch's device."""
        batch = as_images(images)
        means = crop_means(self.model, list(batch), self.image_size, self.crops,
                           self.cfg.eval_batch_size, self.device)
        return means["pred"].to(images.device)

    def score_image(self, image) -> float:
        """The score of one PIL image."""
        from .data.files import fit_size, pil_to_tensor, upright_rgb

        img = fit_size(upright_rgb(image), self.cfg.data_size or None, self.image_size)
        return float(self.score_batch(pil_to_tensor(img)[None])[0])

    def score_paths(self, paths: Sequence[str], *, batch_size: int = 32, skip_bad: bool = False,
                    progress: bool = False) -> List[Tuple[str, float]]:
        """``[(file, score), ...]`` for image files and folders (expanded recursively, sorted);
        ``skip_bad`` leaves unreadable images out, with a warning."""
        from .data.file_scores import score_images

        return score_images(self, paths, batch_size=batch_size, device=self.device,
                            image_size=None, skip_bad=skip_bad, progress=progress,
                            max_side=self.cfg.data_size or None, min_side=self.image_size)


def load_scorer(checkpoint: str, device: Optional[str] = None, crops: int = 0,
                image_size: int = 0) -> Scorer:
    """A ``Scorer`` for a trained checkpoint on ``device`` (None: the checkpoint's own setting,
    e.g. auto = CUDA when visible), averaging ``crops`` crops of ``image_size`` (0: the
    checkpoint's ``eval_crops`` and ``image_size``). Call it with a (B, 3, h, w) tensor in
    [0, 1], a PIL image or image paths; it scores them as ``freqalign eval`` and ``freqalign
    score`` do."""
    model, cfg, _, _ = load_model(checkpoint, device)
    return Scorer(model, cfg, crops, image_size)


__all__ = ["as_images", "check_fits", "grid_shape", "crop_grid", "grid_crops", "crop_means", "load_model",
           "Scorer", "load_scorer"]
