"""Frequency movement (docs/design.md section 4.3, stage 2) and perturbation jitter
(stage 3).

``branch`` and ``move`` modes: the trainer adapts at each window position (from the same
warm-up state, or continuing from the previous position) and records one entry per position
here; the trainer, not this state, keeps the best position's model on disk. ``probe`` mode
scores every position at once on frozen features from one ungrouped ``freq_pool`` pass over
all S*S grid frequencies.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from ..basis import grid_to_index, window, zigzag
from ..metrics import srcc
from ..ops import freq_pool
from .criteria import (TARGET, balanced_accuracy, confusion_score, domain_labels,
                       fit_domain_classifier)
from .ridge import ridge_fit

PROBE_RIDGE = 1e-2  # the quality probe's ridge penalty per training row


class SearchState:
    """The curve so far: one entry per visited position, and the best-scoring one."""

    def __init__(self, positions: List[int], window_size: int, grid: int):
        self.positions = list(positions)
        self.window_size, self.grid = window_size, grid
        self.entries: List[Dict] = []

    def record(self, position: int, criterion: str, scores: Dict[str, float],
               target_srcc: float, step: int) -> bool:
        """Add a position's entry; True when it is the best so far (ties keep the lower one)."""
        entry = {"position": int(position), "freqs": [list(f) for f in
                                                      window(position, self.window_size, self.grid)],
                 "criterion": criterion, "score": float(scores[criterion]),
                 "scores": {k: float(v) for k, v in scores.items()},
                 "target_test_srcc": float(target_srcc), "step": int(step)}
        best = self.best()
        self.entries.append(entry)
        return best is None or entry["score"] > best["score"]

    def best(self) -> Optional[Dict]:
        if not self.entries:
            return None
        return max(self.entries, key=lambda e: (e["score"], -e["position"]))

    def selected(self) -> Optional[int]:
        best = self.best()
        return None if best is None else best["position"]

    def state_dict(self) -> Dict:
        return {"positions": self.positions, "window_size": self.window_size, "grid": self.grid,
                "entries": self.entries}

    def load_state_dict(self, state: Dict) -> None:
        self.positions = list(state["positions"])
        self.window_size, self.grid = state["window_size"], state["grid"]
        self.entries = list(state["entries"])


def jitter(position: int, radius: int, last: int, generator: torch.Generator) -> int:
    """``position`` + a uniform offset in [-radius, radius], clipped to 0..last."""
    if radius <= 0:
        return int(position)
    offset = int(torch.randint(-radius, radius + 1, (), generator=generator))
    return int(min(max(position + offset, 0), last))


def all_frequencies(features: torch.Tensor, grid: int) -> torch.Tensor:
    """``(B, C, S*S)`` coefficients of every grid frequency, in zigzag order, in one pass."""
    idx = grid_to_index(zigzag(grid), features.shape[-2], features.shape[-1], grid)
    return freq_pool(features, idx, grouped=False, norm="mean")


def window_features(coeffs: np.ndarray, position: int, size: int) -> np.ndarray:
    """Grouped window pooling from all-frequency coefficients ``(N, C, S*S)``: channel group k
    (of ``size`` equal groups) takes zigzag frequency ``position + k`` -> ``(N, C)``."""
    n, c, _ = coeffs.shape
    which = position + np.arange(c) // (c // size)
    return coeffs[:, np.arange(c), which]


def probe_scores(coeffs: Dict[str, np.ndarray], labels: Dict[str, np.ndarray], positions: List[int],
                 size: int, fit_steps: int = 100) -> List[Dict[str, float]]:
    """Score every window position on frozen all-frequency coefficients (our choice of score).

    At each position: a ridge quality probe fit on ``src_train`` gives held-out source SRCC
    ``q`` (how much quality information the window carries, label-free for the target); a
    logistic domain probe fit on ``src_train`` vs ``tgt_train`` gives held-out accuracy ``a``.
    The probe score ``q + confusion(a) = q - |a - 0.5|`` favours windows whose quality cues
    are already shared across domains: the transferable ones. ``target_test_srcc`` is the
    quality probe's SRCC on ``tgt_test`` (target labels: analysis only).
    """
    out = []
    for p in positions:
        feat = {k: window_features(v, p, size) for k, v in coeffs.items()}
        n = len(feat["src_train"])
        quality = ridge_fit(feat["src_train"], labels["src_train"], PROBE_RIDGE * n)
        q = srcc(quality(feat["src_val"]), labels["src_val"])
        x = np.concatenate([feat["src_train"], feat["tgt_train"]])
        domains = domain_labels(n, len(feat["tgt_train"]))
        proba = fit_domain_classifier(x, domains == TARGET, fit_steps)
        acc = balanced_accuracy(proba(feat["src_val"]), proba(feat["tgt_val"]))
        out.append({"probe": q + confusion_score(acc), "probe_source_srcc": q,
                    "domain_accuracy": acc,
                    "target_test_srcc": srcc(quality(feat["tgt_test"]), labels["tgt_test"])})
    return out


__all__ = ["SearchState", "jitter", "all_frequencies", "window_features", "probe_scores"]
