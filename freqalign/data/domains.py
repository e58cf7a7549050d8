"""A run's two domains as training and evaluation read them: datasets opened whole, then split
into source train/val and target train/val/test."""
from __future__ import annotations

from typing import Tuple

from .files import ImageFileDataset
from .registry import open_dataset
from .splits import split_domain


def open_images(spec: str, cfg):
    """Dataset ``spec`` as training and evaluation read it: whole images, since the trainer
    crops them itself (never the dataset's centre crop), with the longer side shrunk to
    ``cfg.data_size`` when set and the shorter enlarged to ``cfg.image_size`` when below it.
    The embedded dataset is generated at ``data_size`` (0: its default)."""
    dataset = open_dataset(spec, image_size=cfg.data_size or None, cache_dir=cfg.cache_dir or None,
                           seed=cfg.data_seed)
    if isinstance(dataset, ImageFileDataset):
        dataset.whole_images(max_side=cfg.data_size or None, min_side=cfg.image_size)
    return dataset


def load_data(cfg, wrap=None) -> Tuple[dict, dict]:
    """``(splits, how)``: src_train/src_val and tgt_train/tgt_val/tgt_test, and how each domain
    was split (``{"source": ..., "target": ...}``, for results.json). A dataset's official
    split is used when it ships one (KonIQ-10k; train -> training, val -> the criteria and
    source validation, test -> the reported target metrics); otherwise the split is
    content-disjoint by ``groups`` (the reference image of synthetic datasets). ``wrap``, when
    given, replaces each whole dataset before the split (``method.stem_cache``)."""
    src, tgt = open_images(cfg.source, cfg), open_images(cfg.target, cfg)
    if wrap is not None:
        src, tgt = wrap(src), wrap(tgt)
    sv, tv, tt = cfg.source_val_fraction, cfg.target_val_fraction, cfg.target_test_fraction
    seed = cfg.seed if cfg.split_by_seed else cfg.data_seed
    common = dict(seed=seed, cap=cfg.max_per_domain, official=cfg.official_split)
    s, s_how = split_domain(src, {"train": 1 - sv, "val": sv}, **common)
    t, t_how = split_domain(tgt, {"train": 1 - tv - tt, "val": tv, "test": tt}, **common)
    return ({"src_train": s["train"], "src_val": s["val"], "tgt_train": t["train"],
             "tgt_val": t["val"], "tgt_test": t["test"]}, {"source": s_how, "target": t_how})


__all__ = ["open_images", "load_data"]
