"""Content-disjoint splits: every group (reference photo / content id) lands in one split."""
from typing import Dict, Sequence

import numpy as np
from torch.utils.data import Subset

from ..errors import DatasetError


class IQASubset(Subset):
    """A ``Subset`` that keeps ``name``, ``scores`` and ``groups`` of its rows."""

    def __init__(self, dataset, indices: Sequence[int], name: str = ""):
        indices = [int(i) for i in indices]
        super().__init__(dataset, indices)
        idx = np.asarray(indices, dtype=np.int64)
        self.scores = np.asarray(dataset.scores, dtype=np.float64)[idx]
        self.groups = np.asarray(dataset.groups)[idx]
        self.name = name or getattr(dataset, "name", "subset")


def split_by_group(dataset, fractions: Dict[str, float], seed: int) -> Dict[str, IQASubset]:
    """Split ``dataset`` into named subsets, disjoint by ``dataset.groups``.

    Groups are shuffled with ``seed`` and dealt out in that order; each group goes to the split
    that is furthest below its target share of samples (``fractions``, which must sum to 1),
    so sizes follow the fractions as closely as whole groups allow. Every split with a
    positive fraction gets at least one group. Deterministic for a given ``seed``.
    """
    if not fractions:
        raise ValueError("fractions is empty: give e.g. {'train': 0.8, 'val': 0.2}")
    names = list(fractions)
    frac = np.array([float(fractions[k]) for k in names])
    if np.any(frac < 0) or not np.isfinite(frac).all() or abs(frac.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    groups = np.asarray(dataset.groups)
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    needed = int((frac > 0).sum())
    if len(uniq) < needed:
        raise DatasetError(f"fractions asks for {needed} non-empty splits but the dataset has "
                           f"only {len(uniq)} groups")
    order = np.random.default_rng(seed).permutation(len(uniq))
    target = frac * len(groups)
    filled = np.zeros(len(names))
    owner = np.empty(len(uniq), dtype=np.int64)
    positive = [j for j in np.argsort(-frac, kind="stable") if frac[j] > 0]
    for k, g in enumerate(order):
        # one group for each split with a positive fraction first, then the largest deficit
        pick = positive[k] if k < len(positive) else int(np.argmax(target - filled))
        owner[g] = pick
        filled[pick] += counts[g]
    row_owner = owner[inverse]
    return {name: IQASubset(dataset, np.flatnonzero(row_owner == j).tolist(),
                            name=f"{getattr(dataset, 'name', 'subset')}/{name}")
            for j, name in enumerate(names)}

