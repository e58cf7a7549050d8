"""The content confound of the embedded benchmark (issue 23, item 6), with method-agnostic rows
only: do the target's grayscale scenes dominate the domain classifier?

Frozen ImageNet EfficientNet-Lite0 features (the demo model at initialisation, GAP of its
head map) of every image of both domains; the cross-validated domain classifier of
``freqalign.method.alignment`` on (a) all images, (b) colour scenes only in both domains,
(c) grayscale scenes only; and, with (a)'s classifier, the share of each target scene's
images it calls "target".

    python -m benchmarks.method.content_confound [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

from freqalign.data.domains import load_data
from freqalign.data.embedded import SOURCE_SCENES, TARGET_SCENES, skimage_data_dir
from freqalign.method import stem_cache
from freqalign.method.alignment import FOLDS, domain_accuracy
from freqalign.method.criteria import fit_domain_classifier
from freqalign.method.model import build_model
from freqalign.scoring import crop_means
from freqalign.run.config import make_config

SCENES = list(SOURCE_SCENES) + list(TARGET_SCENES)  # meta["photo"] indexes this (-1: charts)


def is_gray(scene: str) -> bool:
    """A scene whose photo file has no colour (mode L, or equal channels)."""
    files = {**SOURCE_SCENES, **TARGET_SCENES}[scene]
    image = Image.open(skimage_data_dir() / files[0])
    if image.mode in ("L", "I;16", "1"):
        return True
    rgb = np.asarray(image.convert("RGB"), np.int16)
    return bool(np.abs(rgb[..., 0] - rgb[..., 1]).max() == 0 and
                np.abs(rgb[..., 1] - rgb[..., 2]).max() == 0)


@torch.no_grad()
def features(cfg) -> dict:
    """GAP features and scene ids of every image per domain, frozen ImageNet model."""
    data, _ = load_data(cfg, stem_cache.wrapper(cfg, "cpu", progress=True))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.from_stem = True
    out = {}
    for domain, parts in (("source", ("src_train", "src_val")),
                          ("target", ("tgt_train", "tgt_val", "tgt_test"))):
        feats, scenes = [], []
        for k in parts:
            d = data[k]
            images = [d[i][0] for i in range(len(d))]
            feats.append(crop_means(model, images, cfg.image_size, 1, 128, "cpu")["feat"].numpy())
            base = d.dataset.dataset if hasattr(d.dataset, "dataset") else d.dataset
            scenes.append(np.asarray(base.meta["photo"])[np.asarray(d.indices)])
        out[domain] = (np.concatenate(feats), np.concatenate(scenes))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/method/content_confound.json")
    args = ap.parse_args()
    cfg = make_config("demo", overrides={"progress": False})
    f = features(cfg)
    gray = {i: is_gray(s) for i, s in enumerate(SCENES)}
    (xs, ss), (xt, st) = f["source"], f["target"]
    colour_s = np.array([s >= 0 and not gray[s] for s in ss])
    colour_t = np.array([not gray[s] for s in st])
    gray_s = np.array([s >= 0 and gray[s] for s in ss])
    rows = {"all": domain_accuracy(xs, xt),
            "colour scenes only": domain_accuracy(xs[colour_s], xt[colour_t]),
            "grayscale scenes only": domain_accuracy(xs[gray_s], xt[~colour_t])}
    proba = fit_domain_classifier(np.concatenate([xs, xt]),
                                  np.r_[np.zeros(len(xs)), np.ones(len(xt))], 50)
    per_scene = {SCENES[s]: {"gray": gray[s], "n": int((st == s).sum()),
                             "called_target": float((proba(xt[st == s]) > 0.5).mean())}
                 for s in np.unique(st)}
    report = {"features": "frozen ImageNet EfficientNet-Lite0, GAP of the head map",
              "folds": FOLDS, "balanced_accuracy": rows, "target_scenes_in_sample": per_scene,
              "source_scenes": {s: gray[i] for i, s in enumerate(SCENES[:len(SOURCE_SCENES)])},
              "n": {"source": len(xs), "target": len(xt)}}
    print(json.dumps(report, indent=2))
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
