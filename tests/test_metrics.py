"""freqalign.metrics against scipy.stats (the oracle).

Both sides are float64 formulas over at most a few hundred values (ranks, sums, a square root):
rounding errors of order n * 2^-53 ~ 1e-13 at most, so ``abs=1e-12`` cannot fail from
summation order, and any real disagreement (a tie rule, an off-by-one) is far larger.
"""
import numpy as np
import pytest
import torch
from scipy import stats

from freqalign import metrics


def _data(seed, n=200, ties=False):
    rng = np.random.default_rng(seed)
    true = rng.uniform(size=n)
    pred = 0.6 * true + 0.4 * rng.normal(size=n)
    if ties:
        pred, true = np.round(pred, 1), np.round(true, 1)
    return pred, true


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(seed, ties):
    pred, true = _data(seed, ties=ties)
    assert metrics.srcc(pred, true) == pytest.approx(stats.spearmanr(pred, true)[0], abs=1e-12)
    assert metrics.krcc(pred, true) == pytest.approx(stats.kendalltau(pred, true)[0], abs=1e-12)
    assert metrics.plcc(pred, true) == pytest.approx(stats.pearsonr(pred, true)[0], abs=1e-12)
    assert metrics.rmse(pred, true) == pytest.approx(np.sqrt(np.mean((pred - true) ** 2)))


def test_krcc_chunks_agree(monkeypatch):
    pred, true = _data(7, n=301, ties=True)
    monkeypatch.setattr(metrics, "_KRCC_CELLS", 1000)  # many small chunks
    assert metrics.krcc(pred, true) == pytest.approx(stats.kendalltau(pred, true)[0], abs=1e-12)


def test_plcc_logistic_recovers_a_logistic_relation():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=300)
    true = metrics.logistic4(x, 0.9, 0.1, 0.5, 0.7) + rng.normal(0, 0.01, size=300)
    params = metrics.fit_logistic(x, true)
    assert params is not None
    mapped = metrics.logistic4(x, *params)
    expected = stats.pearsonr(mapped, true)[0]
    assert metrics.plcc_logistic(x, true) == pytest.approx(expected, abs=1e-12)
    assert metrics.plcc_logistic(x, true) > 0.99 > metrics.plcc(x, true)


def test_plcc_logistic_at_least_about_linear_on_noise():
    pred, true = _data(3)
    assert metrics.plcc_logistic(pred, true) >= metrics.plcc(pred, true) - 0.02


@pytest.mark.parametrize("n", [2, 3, 4])
def test_plcc_logistic_of_four_points_or_fewer_is_the_plain_plcc(n):
    """Four parameters would interpolate <= 4 points (scipy refuses < 4): no fit, the plain
    PLCC, against scipy.stats.pearsonr (float64, ~1e-15)."""
    pred, true = _data(n, n=n)
    assert metrics.plcc_logistic(pred, true) == pytest.approx(stats.pearsonr(pred, true)[0],
                                                              abs=1e-12)


def test_constant_predictions_give_zero():
    true = np.linspace(0, 1, 50)
    const = np.full(50, 0.3)
    out = metrics.all_metrics(const, true)
    assert out["srcc"] == out["krcc"] == out["plcc"] == out["plcc_logistic"] == 0.0
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((0.3 - true) ** 2)))


def test_nan_gives_nan_and_bad_shapes_raise():
    pred, true = _data(1, n=20)
    pred[3] = np.nan
    out = metrics.all_metrics(pred, true)
    assert all(np.isnan(v) for v in out.values())
    with pytest.raises(ValueError, match="same length"):
        metrics.srcc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        metrics.plcc([1.0], [2.0])


def test_all_metrics_accepts_tensors_and_perfect_order():
    true = torch.linspace(0, 1, 30)
    out = metrics.all_metrics(true ** 3, true)
    assert set(out) == {"srcc", "krcc", "plcc", "plcc_logistic", "rmse"}
    assert out["srcc"] == pytest.approx(1.0) and out["krcc"] == pytest.approx(1.0)
    assert metrics.srcc(-true, true) == pytest.approx(-1.0)
