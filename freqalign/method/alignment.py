"""How well a model aligns the domains, measured from outside it: the cross-validated accuracy
of a domain classifier fit fresh for the measurement (never the trainer's discriminator) on
held-out source and target images, on GAP features and on each window's band.

0.5 is chance (the domains are indistinguishable on those features); 1.0 is perfect
separation. Label-free: it reads domain membership only, so it may guide choices.
"""
from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from .criteria import TARGET, balanced_accuracy, domain_labels, fit_domain_classifier
from .search import window_features

FOLDS = 5


def domain_accuracy(source: np.ndarray, target: np.ndarray, folds: int = FOLDS,
                    fit_steps: int = 50, seed: int = 0) -> float:
    """Balanced accuracy of a logistic domain classifier on ``source`` vs ``target`` rows,
    ``folds``-fold cross-validated (stratified by domain, folds drawn with ``seed``): every
    row is predicted by a classifier that never saw it."""
    x = np.concatenate([source, target])
    is_target = domain_labels(len(source), len(target)) == TARGET
    rng = np.random.default_rng(seed)
    fold = np.empty(len(x), dtype=np.int64)
    for rows in (np.flatnonzero(~is_target), np.flatnonzero(is_target)):
        fold[rng.permutation(rows)] = np.arange(len(rows)) % folds
    p_target = np.empty(len(x))
    for k in range(folds):
        held = fold == k
        proba = fit_domain_classifier(x[~held], is_target[~held], fit_steps)
        p_target[held] = proba(x[held])
    return balanced_accuracy(p_target[~is_target], p_target[is_target])


def alignment(source: dict, target: dict, positions: Iterable[int], size: int,
              fit_steps: int = 50) -> Dict:
    """``{"gap": accuracy, "bands": {"position": accuracy}}`` from held-out predictions
    ``source`` and ``target`` (each with ``feat``, the GAP features, and ``coeffs``, every grid
    frequency, (N, C, S*S) in zigzag order): the band of ``position`` is what the discriminator
    pools there (channel group k at zigzag frequency ``position + k``)."""
    bands = {str(p): domain_accuracy(window_features(source["coeffs"], p, size),
                                     window_features(target["coeffs"], p, size),
                                     fit_steps=fit_steps) for p in positions}
    return {"gap": domain_accuracy(source["feat"], target["feat"], fit_steps=fit_steps),
            "bands": bands}


__all__ = ["FOLDS", "domain_accuracy", "alignment"]
