"""Cached outputs of a frozen backbone stem, so that training runs only the trainable trunk.

With a pretrained backbone whose first blocks are frozen (``frozen_blocks``), those blocks
compute the same thing at every step for the same input. When every image is exactly one
training crop (the embedded dataset at ``image_size``), the only randomness of a training
input is its flip and rotation, so the stem's output can be computed once per image and
*view* (one of the flips x rotations the config asks for) and stored as float16:
``StemFeatures[i]`` is ``(views (V, C, h, w), score)``. A training batch takes one random
view per image (``pick_views``), evaluation takes view 0, the image itself.

The float16 rounding (relative 2^-11) is the one difference from running the stem each
step; ``tests/test_stem_cache.py`` bounds its effect on the trunk's output.
"""
from __future__ import annotations

import hashlib
import os
from typing import List, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import storage
from ..errors import ConfigError
from .backbones import build_backbone, caches_stem

View = Tuple[bool, int]  # (horizontal flip, quarter turns), applied in that order


def views_for(hflip: bool, rot90: bool) -> List[View]:
    """The views a training batch may draw from: identity first."""
    return [(f, r) for f in ((False, True) if hflip else (False,))
            for r in (range(4) if rot90 else (0,))]


def apply_view(x: torch.Tensor, view: View) -> torch.Tensor:
    """``x`` (..., H, W) flipped and rotated as ``view`` says (as ``crop_batch`` does)."""
    flip, turns = view
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, (-2, -1)) if turns else x


class StemFeatures(torch.utils.data.Dataset):
    """``dataset`` with each image replaced by its cached stem outputs (V, C, h, w) float32."""

    def __init__(self, dataset, features: torch.Tensor, views: List[View]):
        self.dataset, self.features, self.views = dataset, features, list(views)
        self.scores, self.groups = dataset.scores, dataset.groups
        self.name = getattr(dataset, "name", "dataset")
        self.official_split = getattr(dataset, "official_split", None)

    def __len__(self):
        return len(self.features)

    def __getitem__(self, index):
        return self.features[index].float(), torch.tensor(self.scores[index], dtype=torch.float32)


def pick_views(items: list, generator: torch.Generator) -> torch.Tensor:
    """(B, C, h, w): one view of each item (V, C, h, w), drawn uniformly from ``generator``."""
    return torch.stack([f[int(torch.randint(0, len(f), (), generator=generator))] for f in items])


def first_views(items: list) -> torch.Tensor:
    """(B, C, h, w): view 0 (the image as it is) of each item, for evaluation."""
    return torch.stack([f[0] for f in items])


@torch.no_grad()
def compute(stem, dataset, views: List[View], batch: int = 32, progress: bool = True,
            device="cpu") -> torch.Tensor:
    """``(N, V, C, h, w)`` float16 stem outputs of every image of ``dataset`` in every view."""
    stem = stem.to(device).eval()
    size = None
    out = []
    with tqdm(total=len(dataset) * len(views), desc="stem cache", unit="view",
              disable=not progress) as bar:
        for start in range(0, len(dataset), batch):
            images = [dataset[i][0] for i in range(start, min(start + batch, len(dataset)))]
            if size is None:
                size = images[0].shape[-2:]
            if any(im.shape[-2:] != size for im in images):
                raise ConfigError("feature_cache needs every image at one size (the embedded "
                                  "dataset); this dataset's sizes differ: set feature_cache=false")
            x = torch.stack(images).to(device)
            per_view = [stem(apply_view(x, v)).to("cpu", torch.float16) for v in views]
            out.append(torch.stack(per_view, 1))
            bar.update(len(images) * len(views))
    return torch.cat(out)


def key(dataset, stem, views: List[View]) -> str:
    """What a cache file is valid for: the images (the dataset's own cache file, or its
    length and scores), the stem's weights and the views."""
    h = hashlib.sha256()
    source = getattr(dataset, "cache_file", "")
    h.update((os.path.basename(source) if source else str(len(dataset))).encode())
    h.update(np.asarray(dataset.scores, np.float64).tobytes())
    for t in stem.state_dict().values():
        h.update(t.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        h.update(str(tuple(t.shape)).encode())
    h.update(repr(views).encode())
    return h.hexdigest()[:16]


def cached(stem, dataset, views: List[View], folder: str, progress: bool = True,
           device="cpu") -> StemFeatures:
    """``StemFeatures`` of ``dataset``, from ``folder``'s cache file when one matches (``key``),
    else computed (with a progress bar) and saved there atomically."""
    k = key(dataset, stem, views)
    path = os.path.join(folder, f"stem-{getattr(dataset, 'name', 'dataset')}-{k}.pt")
    if os.path.isfile(path):
        features = storage.load(path)
    else:
        features = compute(stem, dataset, views, progress=progress, device=device)
        storage.save(features, path)
    return StemFeatures(dataset, features, views)


def enabled(cfg) -> bool:
    """Whether ``cfg`` trains on cached stem outputs: ``feature_cache`` on, and a backbone
    that freezes a stem at this config (``backbones.caches_stem``)."""
    return bool(cfg.feature_cache) and caches_stem(cfg)


def default_folder(cfg) -> str:
    return os.path.expanduser(cfg.cache_dir or os.environ.get("FREQALIGN_CACHE")
                              or os.path.join("~", ".cache", "freqalign"))


def wrapper(cfg, device="cpu", progress: bool = True):
    """A function ``dataset -> StemFeatures`` for ``cfg`` (``enabled``), else None. Every image
    must be ``image_size`` square: the cache holds whole images, not random crops."""
    if not enabled(cfg):
        return None
    stem = build_backbone(cfg).stem
    views = views_for(cfg.hflip, cfg.rot90)

    def wrap(dataset):
        h, w = dataset[0][0].shape[-2:]
        if (h, w) != (cfg.image_size, cfg.image_size):
            raise ConfigError(f"feature_cache=true needs every image at image_size="
                              f"{cfg.image_size} (whole images are cached, not random crops); "
                              f"{getattr(dataset, 'name', 'the dataset')} has {h}x{w} images: "
                              f"set feature_cache=false")
        return cached(stem, dataset, views, default_folder(cfg), progress, device)
    return wrap
