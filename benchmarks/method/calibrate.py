"""Method-agnostic calibration rows for the embedded benchmark in the pretrained regime.

Frozen ImageNet EfficientNet-Lite0 features of a generated embedded dataset (``--data``, a
``generate_embedded`` dict saved with torch.save, or the cache), content-disjoint splits as
the trainer makes them, and ridge regressions on them:

- ``gap``: ridge on GAP of the head map fit on the source training split -> target test and
  held-out source SRCC (the frozen source-only row);
- ``oracle``: the same ridge fit on the target training split -> target test SRCC;
- ``features``: the hand-crafted-statistics ridge (``freqalign.method.features``);
- per target stage and per target photo: the source-fit GAP ridge's SRCC on each subset.

The ridge penalty is chosen on the held-out source split (no target labels choose anything).
Usage: ``python -m benchmarks.method.calibrate --data FILE [--out FILE.json]``.
"""
import argparse
import json
import time

import numpy as np
import torch

from freqalign.data.splits import split_by_group
from freqalign.method.efficientnet_lite import load_pretrained, preprocess
from freqalign.method.features import dataset_statistics, feature_matrix
from freqalign.method.ridge import ridge_fit
from freqalign.metrics import srcc

PENALTIES = (1e-2, 1e-1, 1.0, 10.0, 100.0)


class _Parts:
    def __init__(self, groups, scores):
        self.groups, self.scores = np.asarray(groups), np.asarray(scores)

    def __len__(self):
        return len(self.groups)


def splits(part: dict, fractions: dict, seed: int = 0) -> dict:
    """Row indices of each split, as ``split_by_group`` makes them for the trainer."""
    sub = split_by_group(_Parts(part["groups"], part["scores"]), fractions, seed)
    return {k: np.asarray(v.indices) for k, v in sub.items()}


@torch.no_grad()
def head_features(images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(N, 1280, 7, 7) frozen head maps of uint8 images (N, 3, 224, 224)."""
    net = load_pretrained()
    out = []
    for i in range(0, len(images), batch):
        out.append(net.features(preprocess(images[i:i + batch].float() / 255)))
    return torch.cat(out)


def ridge_rows(xs, xt, ys, yt, s, t) -> dict:
    """Source-fit ridge (penalty chosen on src val) and target-fit oracle ridge; ``s`` and
    ``t`` are the row indices of each split."""
    n = len(s["train"])
    best = max(PENALTIES, key=lambda l2: srcc(ridge_fit(xs[s["train"]], ys[s["train"]], l2 * n)(
        xs[s["val"]]), ys[s["val"]]))
    f = ridge_fit(xs[s["train"]], ys[s["train"]], best * n)
    o = ridge_fit(xt[t["train"]], yt[t["train"]], best * len(t["train"]))
    return {"l2": best, "source_only_target": srcc(f(xt[t["test"]]), yt[t["test"]]),
            "source_only_source_val": srcc(f(xs[s["val"]]), ys[s["val"]]),
            "oracle_target": srcc(o(xt[t["test"]]), yt[t["test"]]), "predict": f}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--features", default="", help="cache file for the frozen head maps")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    data = torch.load(args.data, weights_only=False)
    src, tgt = data["source"], data["target"]
    s = splits(src, {"train": 0.8, "val": 0.2})
    t = splits(tgt, {"train": 0.5, "val": 0.2, "test": 0.3})
    t0 = time.time()
    try:
        feats = torch.load(args.features) if args.features else None
    except FileNotFoundError:
        feats = None
    if feats is None:
        feats = {k: head_features(d["images"]) for k, d in (("source", src), ("target", tgt))}
        if args.features:
            torch.save(feats, args.features)
    print(f"features {time.time() - t0:.0f} s")
    ys, yt = np.asarray(src["scores"]), np.asarray(tgt["scores"])
    gap = {k: v.mean((2, 3)).double().numpy() for k, v in feats.items()}
    stats = {k: dataset_statistics(_Images(d["images"])) for k, d in (("source", src), ("target", tgt))}
    fs, mu, sd = feature_matrix(stats["source"])
    ft = feature_matrix(stats["target"], mu, sd)[0]
    rows = {}
    for name, keep in source_subsets(src).items():
        sub = {k: v[keep[v]] for k, v in s.items()}
        rows[name] = {"gap": ridge_rows(gap["source"], gap["target"], ys, yt, sub, t),
                      "features": ridge_rows(fs, ft, ys, yt, sub, t)}
    rows["all"]["per_kind_source_val"] = per_kind(rows["all"]["gap"]["predict"](gap["source"]),
                                                 ys, src, s["val"])
    pred = rows["all"]["gap"]["predict"](gap["target"])
    test = t["test"]
    stages = np.asarray(tgt["stages"])[test]
    per_stage = {}
    for stage in ("exposure", "blur", "noise", "jpeg"):
        has = np.array([stage in st.split("+") for st in stages])
        per_stage[stage] = {"with": srcc(pred[test][has], yt[test][has]), "n_with": int(has.sum()),
                            "without": srcc(pred[test][~has], yt[test][~has])}
    photos = np.asarray(tgt["photo"])[test]
    per_photo = {int(p): {"srcc": srcc(pred[test][photos == p], yt[test][photos == p]),
                          "pred_mean": float(pred[test][photos == p].mean()),
                          "label_mean": float(yt[test][photos == p].mean()),
                          "n": int((photos == p).sum())} for p in np.unique(photos)}
    for r in rows.values():
        r["gap"].pop("predict"), r["features"].pop("predict")
    report = {"rows": rows, "per_stage": per_stage, "per_photo": per_photo,
              "n": {"source": len(ys), "target": len(yt)}}
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


def source_subsets(src: dict) -> dict:
    """Boolean row masks of source variants evaluated from one generation: all rows, no
    dead-leaves charts, v6's six kinds only, and both."""
    names = list(src["kind_names"])
    chart = np.asarray(src["chart"], bool)
    v6 = np.isin(np.asarray(names)[np.asarray(src["kind"])],
                 ("gaussian_blur", "white_noise", "jpeg", "contrast", "pixelation", "quantization"))
    return {"all": np.ones_like(chart), "photos": ~chart, "v6-kinds": v6, "v6-kinds-photos": v6 & ~chart}


def per_kind(pred, ys, src, rows) -> dict:
    """SRCC of source predictions within each distortion kind on ``rows``."""
    kinds = np.asarray(src["kind"])[rows]
    return {name: srcc(pred[rows][kinds == k], ys[rows][kinds == k])
            for k, name in enumerate(src["kind_names"]) if (kinds == k).sum() > 2}


class _Images:
    """(image, score) items from a uint8 tensor, for ``dataset_statistics``."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float() / 255, 0.0


if __name__ == "__main__":
    main()
