"""A tiny two-domain CSV dataset and a tiny config, so training tests take seconds; and a check
of a finished run's reported metrics."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import stats

# 3 window positions x 2 steps; 15 optimizer steps in all
TINY = ["image_size=32", "cnn_width=16", "cnn_downsample=2", "batch_size=8", "eval_batch_size=64",
        "disc_hidden=16", "regressor_hidden=8", "warmup_steps=4", "dann_warmup_steps=2",
        "window_size=4", "search_stride=20", "steps_per_position=2", "finetune_steps=3", "eval_every=3",
        "checkpoint_every=2", "log_every=2", "criterion_max_samples=32", "domain_fit_steps=5",
        "progress=false", "threads=1"]


def _image(rng, quality: float, domain: str) -> np.ndarray:
    base = rng.random((4, 4, 3))
    img = np.kron(base, np.ones((8, 8, 1)))  # blocky content, 32 x 32
    noise = rng.normal(0, 1, img.shape) * (1 - quality) * (0.3 if domain == "source" else 0.15)
    if domain == "target":
        img = img * (0.6 + 0.4 * quality)  # darker when worse
    return (np.clip(img + noise, 0, 1) * 255).astype(np.uint8)


def make_tiny_data(folder) -> dict:
    """Write source and target CSV datasets (8 groups x 6 images each); return overrides."""
    specs = {}
    for d, domain in enumerate(("source", "target")):
        rng = np.random.default_rng(d)
        root = os.path.join(folder, domain)
        os.makedirs(root, exist_ok=True)
        rows = []
        for g in range(8):
            for k in range(6):
                q = (k + rng.random()) / 6
                name = f"{domain}_{g}_{k}.png"
                Image.fromarray(_image(rng, q, domain)).save(os.path.join(root, name))
                rows.append({"path": name, "score": f"{q:.4f}", "group": f"{domain}{g}"})
        table = os.path.join(root, "labels.csv")
        with open(table, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "score", "group"])
            writer.writeheader()
            writer.writerows(rows)
        specs[domain] = f"csv:{table}"
    return specs


def tiny_overrides(specs: dict) -> list:
    return TINY + [f"source={specs['source']}", f"target={specs['target']}"]


def assert_metrics_match_predictions(run):
    """A run's reported target SRCC, PLCC and KRCC are those of its saved target predictions,
    recomputed by scipy.stats (the oracle). Both sides are float64 formulas over a few dozen
    values, rounding errors of order 1e-15, so 1e-12 (about 1e4 eps) is a safe tolerance.
    Returns the run's results."""
    results = json.loads((run / "results.json").read_text())
    predictions = np.load(run / "target_predictions.npz")
    pred, true = predictions["pred"].astype(np.float64), predictions["true"].astype(np.float64)
    assert len(pred) == len(true) == results["sizes"]["tgt_test"] > 0
    expected = {"srcc": stats.spearmanr(pred, true)[0], "plcc": stats.pearsonr(pred, true)[0],
                "krcc": stats.kendalltau(pred, true)[0]}
    for name, value in expected.items():
        assert results["target"][name] == pytest.approx(value, abs=1e-12), name
    return results
