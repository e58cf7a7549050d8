"""``freqalign compare``: source-only, dann, freqalign and target-oracle over seeds, paired.

Per seed, freqalign runs first and keeps its stage-boundary checkpoints; the baselines fork
from them (source-only after the shared source warm-up, dann after the shared DANN warm-up),
so the methods of a seed share the warm-up and all have the same step budget in their final
model's history; the forks give the same result as runs from scratch (tested). The
target-oracle, the ceiling, trains on target labels for the whole budget (its own run).
Methods are then compared per seed (``paired``), with Student-t 95% intervals over seeds.
The hand-crafted-features ridge (``features``) is a deterministic reference row.
Finished runs are reused when their results carry exactly the same config.

``compare.json`` keys: ``config``, ``seeds``, ``runs`` (every run's results.json by method),
``summary`` (per method: ``target_srcc`` / ``target_plcc`` / ``source_srcc`` lists by seed and
their ``*_mean``, ``*_std`` (ddof=1), ``selected_windows``), ``paired`` (``"freqalign - dann"``,
``"freqalign - source-only"``, ``"dann - source-only"``: ``mean``, ``low``, ``high`` (95% t
interval), ``n``, ``per_seed``, ``excludes_zero``; on target SRCC), ``gap_closed``
(``freqalign`` and ``dann``: ``share`` of the source-only -> target-oracle target-SRCC gap,
ratio of mean gains, and ``per_seed``), ``features`` (the baseline's metrics).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..data.domains import load_data
from ..errors import ConfigError
from .config import Config, apply
from .evaluate import finished
from .loop import train
from .paired import CONFIDENCE, gap_closed, paired_difference
from .plan import Plan

ORDER = ("source-only", "dann", "freqalign", "target-oracle")
PAIRS = (("freqalign", "dann"), ("freqalign", "source-only"), ("dann", "source-only"))


def compare(cfg: Config, out: str, seeds: int = 5, first_seed: int = 0) -> str:
    """Run every method for ``seeds`` seeds into ``out``; write compare.json/.md; return the table."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    runs = {m: [] for m in ORDER}
    for seed in range(first_seed, first_seed + seeds):
        base = apply(Config(**cfg.to_dict()), {"seed": seed, "method": "freqalign"}, "compare")
        fa_dir = os.path.join(out, f"seed{seed}", "freqalign")
        runs["freqalign"].append(finished(base, fa_dir) or
                                 train(base, fa_dir, keep_stage_checkpoints=True))
        for method in ("source-only", "dann", "target-oracle"):
            c = apply(Config(**base.to_dict()), {"method": method}, "compare")
            fork = Plan(c).fork_from(Plan(base), fa_dir)  # "": no stage to share
            run_dir = os.path.join(out, f"seed{seed}", method)
            runs[method].append(finished(c, run_dir) or train(c, run_dir, fork_from=fork))
    summary = summarize(runs)
    report = {"config": cfg.to_dict(), "seeds": list(range(first_seed, first_seed + seeds)),
              "summary": summary, "paired": paired(runs), "gap_closed": gaps(runs),
              "features": features_baseline(cfg), "runs": runs}
    with open(os.path.join(out, "compare.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    table = markdown(report, cfg)
    with open(os.path.join(out, "compare.md"), "w") as fh:
        fh.write(table)
    return table


def _target_srcc(results: list) -> list:
    return [r["target"]["srcc"] for r in results]


def summarize(runs: dict) -> dict:
    out = {}
    for method, results in runs.items():
        row = {"target_srcc": _target_srcc(results),
               "target_plcc": [r["target"]["plcc"] for r in results],
               "source_srcc": [r["source_val"]["srcc"] for r in results],
               "selected_windows": [r["selected_window"] and r["selected_window"]["position"]
                                    for r in results]}
        for key in ("target_srcc", "target_plcc", "source_srcc"):
            values = np.asarray(row[key])
            row[f"{key}_mean"] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[method] = row
    return out


def paired(runs: dict) -> dict:
    return {f"{a} - {b}": paired_difference(_target_srcc(runs[a]), _target_srcc(runs[b]))
            for a, b in PAIRS}


def gaps(runs: dict) -> dict:
    so, orc = _target_srcc(runs["source-only"]), _target_srcc(runs["target-oracle"])
    return {m: gap_closed(_target_srcc(runs[m]), so, orc) for m in ("freqalign", "dann")}


def features_baseline(cfg: Config) -> dict:
    """The hand-crafted-features ridge on the same splits: fit on the source training split
    (and, as its own ceiling, on the target training split); deterministic."""
    from ..metrics import evaluate
    from ..method.features import FeatureRidge, dataset_statistics

    data, _ = load_data(cfg)
    stats = {k: dataset_statistics(data[k], progress=cfg.progress)
             for k in ("src_train", "src_val", "tgt_train", "tgt_test")}
    source = FeatureRidge().fit(stats["src_train"], data["src_train"].scores)
    oracle = FeatureRidge().fit(stats["tgt_train"], data["tgt_train"].scores)
    keep = ("srcc", "plcc", "krcc", "rmse")

    def metrics(model, split):
        m = evaluate(model.predict(stats[split]), data[split].scores)
        return {k: m[k] for k in keep}

    return {"target": metrics(source, "tgt_test"), "source_val": metrics(source, "src_val"),
            "target_oracle": metrics(oracle, "tgt_test")}


def _ci(d: dict) -> str:
    if d["low"] is None:
        return f"{d['mean']:+.4f} (one seed: no interval)"
    mark = " (excludes 0)" if d["excludes_zero"] else ""
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]{mark}"


def markdown(report: dict, cfg: Config) -> str:
    summary, n = report["summary"], len(report["seeds"])
    lines = [f"# freqalign compare: preset `{cfg.preset}`, {n} seed(s)", "",
             f"Source `{cfg.source}` -> target `{cfg.target}`; SRCC/PLCC on the content-disjoint "
             f"target test split and SRCC on the held-out source split, mean ± std over seeds "
             f"(ddof=1). Criterion `{cfg.criterion}`, window size {cfg.window_size}, search mode "
             f"`{cfg.search_mode}`.", "",
             "| method | target SRCC | target PLCC | source-val SRCC | selected window(s) |",
             "|---|---|---|---|---|"]
    for m in ORDER:
        s = summary[m]
        windows = "GAP" if m == "dann" else ("-" if m != "freqalign" else
                                             ", ".join(str(w) for w in s["selected_windows"]))
        note = " (uses target labels: ceiling)" if m == "target-oracle" else ""
        lines.append(f"| {m}{note} | {s['target_srcc_mean']:.4f} ± {s['target_srcc_std']:.4f} | "
                     f"{s['target_plcc_mean']:.4f} ± {s['target_plcc_std']:.4f} | "
                     f"{s['source_srcc_mean']:.4f} ± {s['source_srcc_std']:.4f} | {windows} |")
    f = report["features"]
    lines.append(f"| features (hand-crafted ridge, deterministic) | {f['target']['srcc']:.4f} | "
                 f"{f['target']['plcc']:.4f} | {f['source_val']['srcc']:.4f} | - |")
    lines += ["", f"Features ridge fit on target labels (its ceiling): target SRCC "
              f"{f['target_oracle']['srcc']:.4f}.", "",
              f"Paired differences in target SRCC (per seed, same warm-up and budget), mean and "
              f"{CONFIDENCE:.0%} Student-t interval over {n} seeds:", "",
              "| difference | mean [95% CI] | per seed |", "|---|---|---|"]
    for name, d in report["paired"].items():
        lines.append(f"| {name} | {_ci(d)} | {', '.join(f'{v:+.3f}' for v in d['per_seed'])} |")
    lines += ["", "Share of the source-only -> target-oracle target-SRCC gap closed (ratio of the "
              "mean paired gains):", ""]
    for m, g in report["gap_closed"].items():
        share = "n/a" if g["share"] is None else f"{g['share']:.2f}"
        lines.append(f"- {m}: {share} (mean gap {g['mean_gap']:.4f})")
    return "\n".join(lines) + "\n"
