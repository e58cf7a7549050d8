"""Content-disjoint splits: every group (reference photo / content id) lands in one split;
a dataset's official split when it ships one; fixed subsets."""
import warnings
from typing import Dict, List, Sequence, Tuple

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


def fixed_subset(n: int, cap: int, seed: int) -> List[int]:
    """A fixed subset of at most ``cap`` of the indices ``0..n-1``, sorted."""
    if n <= cap:
        return list(range(n))
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap]).tolist()


def split_domain(dataset, fractions: Dict[str, float], seed: int, cap: int = 0,
                 official: bool = True) -> Tuple[Dict[str, IQASubset], dict]:
    """``({part: subset}, how)`` for the parts named in ``fractions``, after capping the dataset
    at ``cap`` images (0: all; a ``fixed_subset``): the dataset's own ``official_split`` when
    ``official`` is on and it has every part, content-disjoint; else ``split_by_group`` with
    ``fractions``. ``how`` says which, for results.json."""
    keep = fixed_subset(len(dataset), cap or len(dataset), seed)
    how = {"kind": "group", "seed": seed, "fractions": fractions}
    shipped = getattr(dataset, "official_split", None)
    if shipped is not None and official:
        parts = {k: np.intersect1d(shipped.get(k, []), keep).astype(np.int64) for k in fractions}
        problem = _official_problem(dataset, parts)
        if not problem:
            return ({k: IQASubset(dataset, rows.tolist(), name=f"{dataset.name}/{k}")
                     for k, rows in parts.items()}, {"kind": "official", "parts": list(parts)})
        how["official_split_unused"] = problem
        warnings.warn(f"{dataset.name}: official split not used ({problem}); splitting by "
                      f"content instead", RuntimeWarning, stacklevel=2)
    capped = dataset if len(keep) == len(dataset) else IQASubset(dataset, keep, name=dataset.name)
    return split_by_group(capped, fractions, seed), how


def _official_problem(dataset, parts: dict) -> str:
    """Why the official split ``parts`` (part -> rows) cannot be used; "" when it can."""
    missing = [k for k, rows in parts.items() if not len(rows)]
    if missing:
        return f"it has no {' or '.join(missing)} part"
    groups = [set(np.asarray(dataset.groups)[rows].tolist()) for rows in parts.values()]
    if sum(map(len, groups)) > len(set().union(*groups)):
        return "its parts share content (groups)"
    return ""
