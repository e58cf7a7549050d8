"""How well a model aligns the domains, measured from outside it: the cross-validated accuracy
of a domain classifier fit fresh for the measurement (never the trainer's discriminator) on
held-out source and target images, on GAP features and on each window's band, with folds
that hold whole content groups (photo tiles).

0.5 is chance (the domains are indistinguishable on those features); 1.0 is perfect
separation. Label-free: it reads domain membership only, so it may guide choices.
"""
from __future__ import annotations

from typing import Dict, Iterable

import numpy as np

from .criteria import TARGET, balanced_accuracy, domain_labels, fit_domain_classifier
from .search import window_features

FOLDS = 5


def domain_accuracy(source: np.ndarray, target: np.ndarray, source_groups=None,
                    target_groups=None, folds: int = FOLDS, fit_steps: int = 50,
                    seed: int = 0) -> float:
    """Balanced accuracy of a logistic domain classifier on ``source`` vs ``target`` rows,
    cross-validated over ``folds`` folds drawn with ``seed``: every row is predicted by a
    classifier that never saw it. With content groups (``*_groups``, e.g. the photo tile of
    each image) the folds hold whole groups, dealt out per domain, so the classifier is
    always scored on content it never saw: otherwise it can tell the domains apart by
    recognising photos it was fit on (the domains share none), whatever the features do to
    domain differences. Fewer groups than folds in a domain: that many folds (at least 2)."""
    x = np.concatenate([source, target])
    is_target = domain_labels(len(source), len(target)) == TARGET
    rng = np.random.default_rng(seed)
    if source_groups is None:  # every row its own group
        source_groups, target_groups = np.arange(len(source)), np.arange(len(target))
    units = [np.unique(g, return_inverse=True) for g in (source_groups, target_groups)]
    folds = max(2, min(folds, *(len(names) for names, _ in units)))
    fold = np.concatenate([(rng.permutation(len(names)) % folds)[inverse]
                           for names, inverse in units])
    p_target = np.empty(len(x))
    for k in range(folds):
        held = fold == k
        proba = fit_domain_classifier(x[~held], is_target[~held], fit_steps)
        p_target[held] = proba(x[held])
    return balanced_accuracy(p_target[~is_target], p_target[is_target])


def alignment(source: dict, target: dict, positions: Iterable[int], size: int,
              fit_steps: int = 50) -> Dict:
    """``{"gap": accuracy, "bands": {"position": accuracy}}`` from held-out predictions
    ``source`` and ``target`` (each with ``feat``, the GAP features, ``coeffs``, every grid
    frequency, (N, C, S*S) in zigzag order, and ``groups``, each image's content group): the
    band of ``position`` is what the discriminator pools there (channel group k at zigzag
    frequency ``position + k``)."""
    groups = (source["groups"], target["groups"])
    bands = {str(p): domain_accuracy(window_features(source["coeffs"], p, size),
                                     window_features(target["coeffs"], p, size), *groups,
                                     fit_steps=fit_steps) for p in positions}
    return {"gap": domain_accuracy(source["feat"], target["feat"], *groups, fit_steps=fit_steps),
            "bands": bands}


__all__ = ["FOLDS", "domain_accuracy", "alignment"]
