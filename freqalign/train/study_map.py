"""``freqalign study --map``: the per-frequency transfer map of a frozen backbone, in seconds.

The config's backbone as built (ImageNet weights for a pretrained one), or a run's checkpoint
(``--checkpoint``, e.g. ``checkpoints/after-warmup.pt``), is frozen; one ungrouped ``freq_pool``
pass over each split gives every frequency's coefficients (at most ``criterion_max_samples``
images per split, the criteria's samples); ``method.transfer_map`` fits and scores each
frequency. Writes ``study_map.json``, ``study_map.md`` and ``study_map.png``.
"""
from __future__ import annotations

import json
import os
import time

import torch

from ..data.domains import load_data
from ..method import stem_cache
from ..method.model import build_model
from ..method.criteria import Criterion
from ..method.transfer_map import LABEL_FREE_COLUMNS, plot, summary, transfer_map
from ..run.load import load_model
from . import distributed
from .evaluate import Evaluator

COLUMNS = ("target_srcc", *LABEL_FREE_COLUMNS, "domain_accuracy")


def study_map(cfg, out: str, checkpoint: str = "") -> str:
    """Compute the map into folder ``out``; return its markdown summary."""
    t0 = time.time()
    _, _, device = distributed.start(cfg)
    if checkpoint:
        model = load_model(checkpoint, str(device))[0]
    else:
        model = build_model(cfg).to(device)
    model.from_stem = stem_cache.enabled(cfg)
    data, _ = load_data(cfg, stem_cache.wrapper(cfg, device, cfg.progress))
    model.eval()
    evaluator = Evaluator(data, cfg, device)
    with torch.no_grad():
        r = evaluator.predict_samples(model, coeffs=True)
    coeffs = {k: v["coeffs"] for k, v in r.items()}
    labels = {k: v["true"] for k, v in r.items()}
    entries = transfer_map(coeffs, labels, cfg.grid, cfg.domain_fit_steps)
    report = {"config": cfg.to_dict(), "checkpoint": checkpoint, "frequencies": entries,
              "summary": summary(entries), "samples": {k: len(v) for k, v in labels.items()},
              "seconds": time.time() - t0,
              "note": f"target_srcc and {Criterion.ORACLE} read target labels: analysis only"}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "study_map.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    plot(entries, cfg.grid, os.path.join(out, "study_map.png"),
         title=f"{cfg.backbone} {'(' + os.path.basename(checkpoint) + ')' if checkpoint else '(as built)'}: "
               f"{cfg.source} -> {cfg.target}")
    text = markdown(report)
    with open(os.path.join(out, "study_map.md"), "w") as fh:
        fh.write(text)
    return text


def markdown(report: dict) -> str:
    s, n = report["summary"], report["samples"]
    cfg = report["config"]
    lines = [f"# Per-frequency transfer map: {cfg['backbone']} "
             f"{report['checkpoint'] or '(as built)'}, {cfg['source']} -> {cfg['target']}", "",
             "Every frequency pools all channels (frozen features, `norm=\"mean\"`: (0, 0) is "
             "GAP); a ridge fit on the source training split predicts quality from them. "
             "`target_srcc` reads target test labels: analysis only. Samples per split: "
             + ", ".join(f"{k} {v}" for k, v in n.items()) + f"; {report['seconds']:.1f} s.", "",
             f"- GAP (0, 0): target SRCC {s['gap_target_srcc']:.3f}",
             f"- best frequency: ({s['best']['u']}, {s['best']['v']}), target SRCC "
             f"{s['best']['target_srcc']:.3f}",
             f"- frequencies above GAP: {len(s['above_gap'])} of {len(report['frequencies']) - 1}",
             "- Spearman of each label-free criterion with the target SRCC across frequencies: "
             + ", ".join(f"{c} {v:+.2f}" for c, v in s["criterion_vs_target"].items()), "",
             "| position | (u, v) | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for e in report["frequencies"]:
        lines.append(f"| {e['position']} | ({e['u']}, {e['v']}) | "
                     + " | ".join(f"{e[c]:+.3f}" for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
