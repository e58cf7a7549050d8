"""A tiny config on the tiny CSV dataset (``benchmarks.lib.tiny_data``), so training tests take
seconds; and a check of a finished run's reported metrics."""
import json

import numpy as np
import pytest
from scipy import stats

from benchmarks.lib.tiny_data import make_tiny_data  # noqa: F401 - the tests import it from here

# 3 window positions x 2 steps; 15 optimizer steps in all
TINY = ["image_size=32", "cnn_width=16", "cnn_downsample=2", "batch_size=8", "eval_batch_size=64",
        "disc_hidden=16", "regressor_hidden=8", "warmup_steps=4", "dann_warmup_steps=2",
        "window_size=4", "search_stride=20", "steps_per_position=2", "finetune_steps=3", "eval_every=3",
        "checkpoint_every=2", "log_every=2", "criterion_max_samples=32", "domain_fit_steps=5",
        "progress=false", "threads=1"]


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
