"""The per-frequency transfer map: how much transferable quality information each DCT
frequency of a frozen feature map carries.

For every frequency of the ``grid`` x ``grid`` grid, all channels pooled at that one frequency
(one ungrouped ``freq_pool`` pass gives them all): a ridge quality regressor fit on the
labelled source training split, and the label-free criteria of ``criteria.score_all`` on its
predictions (held-out source SRCC, domain confusion, DEV), beside the SRCC it reaches on the
labelled target test split (analysis only: target labels choose nothing). Frequency (0, 0)
with ``norm="mean"`` is global average pooling, DANN's and the regressor's view.
"""
from __future__ import annotations

import warnings
from typing import Dict, List

import numpy as np

from ..basis import zigzag
from ..metrics import srcc
from .criteria import Criterion, score_all
from .ridge import ridge_fit

PENALTY_SHARE = 1e-2  # ridge penalty per training row (on standardised features): fixed


def transfer_map(coeffs: Dict[str, np.ndarray], labels: Dict[str, np.ndarray], grid: int,
                  fit_steps: int = 100) -> List[Dict]:
    """One entry per frequency, in zigzag order: ``u``, ``v``, ``position`` and the criteria.

    ``coeffs[split]`` is ``(N, C, grid * grid)`` (zigzag order) for the splits ``src_train``,
    ``src_val``, ``tgt_train``, ``tgt_val`` and ``tgt_test``; ``labels`` the same splits' scores
    (``tgt_*`` labels only for the ``target_srcc`` and ``oracle`` analysis columns).
    """
    out = []
    penalty = PENALTY_SHARE * len(coeffs["src_train"])
    for position, (u, v) in enumerate(zigzag(grid)):
        x = {k: c[:, :, position] for k, c in coeffs.items()}
        predict = ridge_fit(x["src_train"], labels["src_train"], penalty)
        scores = score_all({
            "src_train_feat": x["src_train"], "tgt_train_feat": x["tgt_train"],
            "src_val_feat": x["src_val"], "src_val_pred": predict(x["src_val"]),
            "src_val_true": labels["src_val"], "tgt_val_feat": x["tgt_val"],
            "tgt_val_pred": predict(x["tgt_val"]), "tgt_val_true": labels["tgt_val"]},
            fit_steps)
        scores["target_srcc"] = srcc(predict(x["tgt_test"]), labels["tgt_test"])
        out.append({"position": position, "u": int(u), "v": int(v), **scores})
    return out


def as_grid(entries: List[Dict], column: str, grid: int) -> np.ndarray:
    """``column`` of ``transfer_map``'s entries laid out on the (u, v) grid."""
    out = np.full((grid, grid), np.nan)
    for e in entries:
        out[e["u"], e["v"]] = e[column]
    return out


LABEL_FREE_COLUMNS = (Criterion.SOURCE, Criterion.CONFUSION, Criterion.DEV)  # in this order


def summary(entries: List[Dict], criteria=LABEL_FREE_COLUMNS) -> Dict:
    """GAP's target SRCC, the best frequency's, how many beat GAP, and the Spearman
    correlation of each label-free criterion with the target SRCC across frequencies."""
    target = np.array([e["target_srcc"] for e in entries])
    best = int(np.nanargmax(target))
    return {"gap_target_srcc": float(target[0]),
            "best": {k: entries[best][k] for k in ("u", "v", "position", "target_srcc")},
            "above_gap": [(e["u"], e["v"]) for e in entries[1:] if e["target_srcc"] > target[0]],
            "criterion_vs_target": {c: srcc(np.array([e[c] for e in entries]), target)
                                    for c in criteria}}


def plot(entries: List[Dict], grid: int, path: str, title: str = "") -> None:
    """A row of heat maps: target SRCC (analysis) and each label-free criterion, on (u, v)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = (("target_srcc", "target SRCC (analysis)"), (Criterion.SOURCE, "source val SRCC"),
               (Criterion.CONFUSION, "confusion"), (Criterion.DEV, "-DEV risk"))
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.6))
    for ax, (col, name) in zip(axes, columns):
        im = ax.imshow(as_grid(entries, col, grid), cmap="viridis")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("v")
        ax.set_ylabel("u")
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def frequency_map(*args, **kwargs) -> List[Dict]:
    """Deprecated name of ``transfer_map``."""
    warnings.warn("freqalign.method.transfer_map.frequency_map is deprecated, use transfer_map",
                  DeprecationWarning, stacklevel=2)
    return transfer_map(*args, **kwargs)
