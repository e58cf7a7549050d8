"""``freqalign compare``: source-only, dann, freqalign and target-oracle over seeds, paired.

Per seed, freqalign runs first and keeps its stage-boundary checkpoints; the baselines fork
from them (source-only after the shared source warm-up, dann after the shared DANN warm-up),
so the methods of a seed share the warm-up and all have the same step budget in their final
model's history; the forks give the same result as runs from scratch (tested). The
target-oracle, the ceiling, trains on target labels for the whole budget (its own run).
Methods are then compared per seed (``paired``), with Student-t 95% intervals over seeds.
The hand-crafted-features ridge (``features``) is a deterministic reference row.
Finished runs are reused when their results carry exactly the same config.

``compare.json`` keys: ``config``, ``seeds``, ``primary`` (the metric of the primary
comparison, ``target_all_srcc``), ``runs`` (every run's results.json by method), ``summary``
(per method: the ``METRICS`` lists by seed, ``gap_domain_acc`` and ``band_domain_acc`` (the
held-out domain accuracy on GAP and on freqalign's selected band of the seed), each with its
``*_mean`` and ``*_std`` (ddof=1), ``selected_windows``), ``paired`` and ``paired_test``
(``"freqalign - dann"``, ``"freqalign - source-only"``, ``"dann - source-only"``: ``mean``,
``low``, ``high`` (95% t interval), ``n``, ``per_seed``, ``excludes_zero``; on the primary
metric and on the test split), ``bootstrap`` (``"freqalign - dann"``: a 95% interval over
target content groups), ``gap_closed`` (``freqalign`` and ``dann``: ``share`` of the
source-only -> target-oracle gap on the held-out target images, ratio of mean gains, and
``per_seed``), ``features`` (the baseline's metrics).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..data.domains import load_data
from ..errors import ConfigError
from ..method.features import FeatureRidge, dataset_statistics
from ..metrics import all_metrics
from ..run.config import Config, apply
from ..run.vocabulary import Method
from .evaluate import finished
from .loop import train
from .paired import CONFIDENCE, bootstrap_difference, gap_closed, paired_difference
from .plan import Plan

ORDER = (Method.SOURCE_ONLY, Method.DANN, Method.FREQALIGN, Method.TARGET_ORACLE)
PAIRS = ((Method.FREQALIGN, Method.DANN), (Method.FREQALIGN, Method.SOURCE_ONLY),
         (Method.DANN, Method.SOURCE_ONLY))
BASELINES = (Method.SOURCE_ONLY, Method.DANN, Method.TARGET_ORACLE)  # fork from freqalign's run


def compare(cfg: Config, out: str, seeds: int = 5, first_seed: int = 0) -> str:
    """Run every method for ``seeds`` seeds into ``out``; write compare.json/.md; return the table."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    runs = {m: [] for m in ORDER}
    for seed in range(first_seed, first_seed + seeds):
        base = apply(Config(**cfg.to_dict()), {"seed": seed, "method": Method.FREQALIGN},
                     "compare")
        fa_dir = os.path.join(out, f"seed{seed}", Method.FREQALIGN)
        runs[Method.FREQALIGN].append(finished(base, fa_dir) or
                                      train(base, fa_dir, keep_stage_checkpoints=True))
        for method in BASELINES:
            c = apply(Config(**base.to_dict()), {"method": method}, "compare")
            fork = Plan(c).fork_from(Plan(base), fa_dir)  # "": no stage to share
            run_dir = os.path.join(out, f"seed{seed}", method)
            runs[method].append(finished(c, run_dir) or train(c, run_dir, fork_from=fork))
    summary, seed_list = summarize(runs), list(range(first_seed, first_seed + seeds))
    report = {"config": cfg.to_dict(), "seeds": seed_list, "primary": PRIMARY,
              "summary": summary, "paired": paired(runs),
              "paired_test": paired(runs, "target_srcc"),
              "bootstrap": {f"{Method.FREQALIGN} - {Method.DANN}":
                            bootstrap(out, seed_list, Method.FREQALIGN, Method.DANN)},
              "gap_closed": gaps(runs), "features": features_baseline(cfg), "runs": runs}
    with open(os.path.join(out, "compare.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    table = markdown(report, cfg)
    with open(os.path.join(out, "compare.md"), "w") as fh:
        fh.write(table)
    return table


METRICS = {"target_all_srcc": ("target_all", "srcc"), "target_srcc": ("target", "srcc"),
           "target_heldout_srcc": ("target_heldout", "srcc"), "target_plcc": ("target", "plcc"),
           "source_srcc": ("source_val", "srcc")}
PRIMARY = "target_all_srcc"  # protocol.md: SRCC over every target image training never read


def metric(results: list, key: str) -> list:
    """``key`` of ``METRICS`` per seed."""
    group, name = METRICS[key]
    return [r[group][name] for r in results]


def band_accuracy(runs: dict, method: str) -> list:
    """Per seed, the held-out domain accuracy of ``method`` on the band freqalign selected in
    that seed (its ``alignment``, measured at every searched position)."""
    return [r["alignment"]["bands"][str(fa["selected_window"]["position"])]
            for r, fa in zip(runs[method], runs[Method.FREQALIGN])]


def summarize(runs: dict) -> dict:
    out = {}
    for method, results in runs.items():
        row = {key: metric(results, key) for key in METRICS}
        row["gap_domain_acc"] = [r["alignment"]["gap"] for r in results]
        row["band_domain_acc"] = band_accuracy(runs, method)
        row["selected_windows"] = [r["selected_window"] and r["selected_window"]["position"]
                                   for r in results]
        for key in (*METRICS, "gap_domain_acc", "band_domain_acc"):
            values = np.asarray(row[key])
            row[f"{key}_mean"] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[method] = row
    return out


def paired(runs: dict, key: str = PRIMARY) -> dict:
    return {f"{a} - {b}": paired_difference(metric(runs[a], key), metric(runs[b], key))
            for a, b in PAIRS}


def gaps(runs: dict) -> dict:
    """The share of the source-only -> target-oracle gap, on the held-out target images (val +
    test), whose labels no method reads (the target-oracle trains on those of tgt_train)."""
    key = "target_heldout_srcc"
    so, ceiling = metric(runs[Method.SOURCE_ONLY], key), metric(runs[Method.TARGET_ORACLE], key)
    return {m: gap_closed(metric(runs[m], key), so, ceiling)
            for m in (Method.FREQALIGN, Method.DANN)}


def bootstrap(out: str, seeds: list, a: str, b: str) -> dict:
    """``bootstrap_difference`` of methods ``a - b`` on every target image, from the runs'
    saved predictions."""
    def load(seed, method):
        return np.load(os.path.join(out, f"seed{seed}", method, "target_predictions.npz"))

    pa, pb = [load(s, a) for s in seeds], [load(s, b) for s in seeds]
    return bootstrap_difference([p["all_pred"] for p in pa], [p["all_pred"] for p in pb],
                                [p["all_true"] for p in pa], [p["all_groups"] for p in pa])


def features_baseline(cfg: Config) -> dict:
    """The hand-crafted-features ridge on the same splits: fit on the source training split
    (and, as its own ceiling, on the target training split); deterministic."""
    data, _ = load_data(cfg)
    stats = {k: dataset_statistics(data[k], progress=cfg.progress)
             for k in ("src_train", "src_val", "tgt_train", "tgt_test")}
    source = FeatureRidge().fit(stats["src_train"], data["src_train"].scores)
    oracle = FeatureRidge().fit(stats["tgt_train"], data["tgt_train"].scores)
    keep = ("srcc", "plcc", "krcc", "rmse")

    def metrics(model, split):
        m = all_metrics(model.predict(stats[split]), data[split].scores)
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

    def ms(row, key, digits=4):
        return f"{row[key + '_mean']:.{digits}f} ± {row[key + '_std']:.{digits}f}"

    lines = [f"# freqalign compare: preset `{cfg.preset}`, {n} seed(s)", "",
             f"Source `{cfg.source}` -> target `{cfg.target}`; criterion `{cfg.criterion}`, window "
             f"size {cfg.window_size}, search mode `{cfg.search_mode}`; splits "
             f"{'drawn per seed' if cfg.split_by_seed else f'fixed (data_seed {cfg.data_seed})'}. "
             f"Mean ± std over seeds (ddof=1). Target SRCC on every target image (`all`, the "
             f"primary metric: no method but the oracle reads any of their labels), on the test "
             f"split, and on the held-out images (val + test: no method reads their labels). "
             f"Domain accuracy: a fresh 5-fold cross-validated domain classifier on held-out "
             f"images (0.5 = aligned), on GAP features and on the band freqalign selected in "
             f"that seed.", "",
             "| method | target SRCC all | test | held-out | source-val SRCC | domain acc GAP "
             "| domain acc band | selected window(s) |", "|---|---|---|---|---|---|---|---|"]
    for m in ORDER:
        s = summary[m]
        windows = "GAP" if m == Method.DANN else ("-" if m != Method.FREQALIGN else
                                             ", ".join(str(w) for w in s["selected_windows"]))
        note = " (trains on tgt_train labels: ceiling)" if m == Method.TARGET_ORACLE else ""
        lines.append(f"| {m}{note} | {ms(s, 'target_all_srcc')} | {ms(s, 'target_srcc')} | "
                     f"{ms(s, 'target_heldout_srcc')} | {ms(s, 'source_srcc')} | "
                     f"{ms(s, 'gap_domain_acc', 3)} | {ms(s, 'band_domain_acc', 3)} | {windows} |")
    f = report["features"]
    lines.append(f"| features (hand-crafted ridge, deterministic) | - | {f['target']['srcc']:.4f} "
                 f"| - | {f['source_val']['srcc']:.4f} | - | - | - |")
    so = summary[Method.SOURCE_ONLY]
    def drop(m, key):  # source-only's mean minus the method's, paired by seed
        return np.mean(np.subtract(so[key], summary[m][key]))

    def cost(m):
        return drop(m, "source_srcc")
    lines += ["", f"Features ridge fit on target labels (its ceiling): target test SRCC "
              f"{f['target_oracle']['srcc']:.4f}.", "",
              "Alignment against source-only (the protocol's gate quantities, means over seeds): "
              f"dann lowers the GAP domain accuracy by {drop('dann', 'gap_domain_acc'):+.3f}, "
              f"freqalign its band's by {drop('freqalign', 'band_domain_acc'):+.3f}; held-out "
              f"source SRCC cost {cost('dann'):+.3f} (dann), {cost('freqalign'):+.3f} (freqalign).",
              "", f"Paired differences in target SRCC on every target image (per seed, same "
              f"warm-up and budget), mean and {CONFIDENCE:.0%} Student-t interval over {n} seeds; "
              f"and on the test split alone:", "",
              "| difference | all: mean [95% CI] | test: mean [95% CI] | per seed (all) |",
              "|---|---|---|---|"]
    for name, d in report["paired"].items():
        lines.append(f"| {name} | {_ci(d)} | {_ci(report['paired_test'][name])} | "
                     f"{', '.join(f'{v:+.3f}' for v in d['per_seed'])} |")
    for name, b in report["bootstrap"].items():
        lines += ["", f"Bootstrap over the {b['groups']} target content groups (tiles), "
                  f"{b['reps']} replicates, {name} on every target image: {CONFIDENCE:.0%} "
                  f"interval [{b['low']:+.4f}, {b['high']:+.4f}]"
                  f"{' (excludes 0)' if b['excludes_zero'] else ''}."]
    lines += ["", "Share of the source-only -> target-oracle gap closed, on the held-out target "
              "images (ratio of the mean paired gains):", ""]
    for m, g in report["gap_closed"].items():
        share = "n/a" if g["share"] is None else f"{g['share']:.2f}"
        lines.append(f"- {m}: {share} (mean gap {g['mean_gap']:.4f})")
    return "\n".join(lines) + "\n"
