"""Paired comparisons over seeds: every method of a seed shares its warm-up and step budget,
so the per-seed differences cancel the seed's luck, and their t interval is the honest one."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from scipy import stats

from ..metrics import srcc

CONFIDENCE = 0.95


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Dict:
    """Mean and two-sided Student-t confidence interval of ``values`` (ddof=1); with one value
    the interval is unknown (None)."""
    v = np.asarray(values, np.float64)
    n, mean = len(v), float(v.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Dict:
    """``a - b`` per seed, with the t interval of its mean; ``excludes_zero`` says whether the
    interval lies entirely on one side of 0."""
    diffs = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    out = t_interval(diffs)
    out["per_seed"] = diffs.tolist()
    out["excludes_zero"] = out["low"] is not None and (out["low"] > 0 or out["high"] < 0)
    return out


def gap_closed(method: Sequence[float], source_only: Sequence[float],
               target_oracle: Sequence[float]) -> Dict:
    """Share of the source-only -> target-oracle gap a method closes: the ratio of the mean
    paired gains (a ratio estimator, so a seed with a tiny gap cannot blow it up), with each
    seed's own ratio beside it."""
    m, s, o = (np.asarray(x, np.float64) for x in (method, source_only, target_oracle))
    gap = float((o - s).mean())
    share = float((m - s).mean() / gap) if abs(gap) > 1e-12 else None
    return {"share": share, "mean_gap": gap,
            "per_seed": [float(g / d) if abs(d) > 1e-12 else None for g, d in zip(m - s, o - s)]}


def bootstrap_difference(a: List[np.ndarray], b: List[np.ndarray], true: List[np.ndarray],
                         groups: List[np.ndarray], reps: int = 2000, seed: int = 0,
                         confidence: float = CONFIDENCE) -> Dict:
    """Percentile interval of the mean over seeds of ``SRCC(a) - SRCC(b)`` under a bootstrap
    over content groups: each replicate draws the groups (the union over seeds) with
    replacement, once for every seed, and takes each drawn group's images in every seed
    (per seed: predictions ``a[s]``, ``b[s]``, labels ``true[s]``, image groups ``groups[s]``).
    The t interval over seeds measures training luck; this measures which images were scored."""
    names = np.unique(np.concatenate(groups))
    rows = [[np.flatnonzero(g == name) for name in names] for g in groups]
    rng = np.random.default_rng(seed)
    stat = np.empty(reps)
    for r in range(reps):
        drawn = rng.integers(0, len(names), len(names))
        diffs = []
        for s in range(len(a)):
            idx = np.concatenate([rows[s][k] for k in drawn])
            diffs.append(srcc(a[s][idx], true[s][idx]) - srcc(b[s][idx], true[s][idx]))
        stat[r] = np.mean(diffs)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(stat, [tail, 100 - tail])
    return {"low": float(low), "high": float(high), "reps": reps, "groups": len(names),
            "excludes_zero": bool(low > 0 or high < 0)}


__all__ = ["CONFIDENCE", "t_interval", "paired_difference", "gap_closed", "bootstrap_difference"]
