"""IQA metrics with pyiqa's names: SRCC, KRCC, PLCC, PLCC after a logistic fit, RMSE.

Implemented with numpy (scipy.stats is the independent reference in the tests).
Conventions:
- inputs are 1-D array-likes (numpy, lists, torch tensors) of the same length >= 2;
- a correlation with a constant input is undefined; we return 0.0 (scipy returns nan) so
  model selection and averages never see a nan from a collapsed predictor;
- any nan or inf in the inputs gives nan (a diverged model is reported, never hidden);
- ``rmse`` is the raw root-mean-square error on the given (normalised) scale;
- ``plcc_logistic`` fits the 4-parameter logistic of VQEG,
  ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, from pred to true by least
  squares, and returns the PLCC of f(pred) with true; if the fit fails it falls back to the
  raw PLCC.
"""
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import expit

_KRCC_CELLS = 4_000_000  # pair comparisons held in memory at once


def _pair(pred, true):
    a = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred,
                   dtype=np.float64).reshape(-1)
    b = np.asarray(true.detach().cpu() if hasattr(true, "detach") else true,
                   dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"pred and true must have the same length, got {a.size} and {b.size}")
    if a.size < 2:
        raise ValueError(f"need at least 2 samples, got {a.size}")
    return a, b


def _bad(a, b) -> bool:
    return not (np.isfinite(a).all() and np.isfinite(b).all())


def _constant(a, b) -> bool:
    return bool(np.ptp(a) == 0 or np.ptp(b) == 0)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    starts = np.flatnonzero(np.r_[True, sx[1:] != sx[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _pearson(a, b) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0)) if denom > 0 else 0.0


def plcc(pred, true) -> float:
    """Pearson linear correlation."""
    a, b = _pair(pred, true)
    if _bad(a, b):
        return float("nan")
    return 0.0 if _constant(a, b) else _pearson(a, b)


def srcc(pred, true) -> float:
    """Spearman rank correlation (Pearson of average ranks)."""
    a, b = _pair(pred, true)
    if _bad(a, b):
        return float("nan")
    return 0.0 if _constant(a, b) else _pearson(_ranks(a), _ranks(b))


def krcc(pred, true) -> float:
    """Kendall's tau-b (tie-corrected), O(n^2) in row chunks of bounded memory."""
    a, b = _pair(pred, true)
    if _bad(a, b):
        return float("nan")
    if _constant(a, b):
        return 0.0
    n = a.size
    chunk = max(1, _KRCC_CELLS // n)
    s = ta = tb = 0.0
    for i in range(0, n, chunk):
        da = np.sign(a[i:i + chunk, None] - a[None, :])
        db = np.sign(b[i:i + chunk, None] - b[None, :])
        s += float((da * db).sum())
        ta += float((da != 0).sum())
        tb += float((db != 0).sum())
    # each unordered pair is counted twice in every sum, which cancels in the ratio
    return float(np.clip(s / np.sqrt(ta * tb), -1.0, 1.0))


def logistic4(x, b1, b2, b3, b4):
    """VQEG's 4-parameter logistic (computed with ``expit``: no overflow far from b3)."""
    return (b1 - b2) * expit((np.asarray(x) - b3) / np.abs(b4)) + b2


def fit_logistic(pred, true):
    """Least-squares parameters (b1, b2, b3, b4) of ``logistic4`` from pred to true, or None
    (also for 4 points or fewer, which four parameters interpolate rather than fit)."""
    a, b = _pair(pred, true)
    if a.size <= 4:
        return None
    p0 = [b.max(), b.min(), np.median(a), max(a.std(), 1e-6)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            params, _ = curve_fit(logistic4, a, b, p0=p0, maxfev=10000)
    except (RuntimeError, ValueError):
        return None
    return params if np.isfinite(params).all() else None


def plcc_logistic(pred, true) -> float:
    """PLCC after mapping pred through the fitted 4-parameter logistic (the plain PLCC where
    the fit fails or there are 4 points or fewer)."""
    a, b = _pair(pred, true)
    if _bad(a, b):
        return float("nan")
    if _constant(a, b):
        return 0.0
    params = fit_logistic(a, b)
    if params is None:
        return _pearson(a, b)
    mapped = logistic4(a, *params)
    return 0.0 if np.ptp(mapped) == 0 else _pearson(mapped, b)


def rmse(pred, true) -> float:
    """Root-mean-square error on the raw scale."""
    a, b = _pair(pred, true)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def all_metrics(pred, true) -> dict:
    """All metrics: ``{"srcc", "krcc", "plcc", "plcc_logistic", "rmse"}``."""
    return {"srcc": srcc(pred, true), "krcc": krcc(pred, true), "plcc": plcc(pred, true),
            "plcc_logistic": plcc_logistic(pred, true), "rmse": rmse(pred, true)}


def evaluate(pred, true) -> dict:
    """Deprecated name of ``all_metrics`` (issue 25: "evaluate" names evaluating a model)."""
    warnings.warn("freqalign.metrics.evaluate is deprecated, use freqalign.metrics.all_metrics",
                  DeprecationWarning, stacklevel=2)
    return all_metrics(pred, true)
