"""``freqalign study``: which frequency windows are proper for alignment (docs/design.md
section 4.3)?

Per seed: one warm-up (source-only, then DANN on GAP), then every window position (stride
``stride``) adapts from that same state for the same ``steps_per_position`` budget (branch mode:
forked weights, optimiser moments, batches and RNGs), and so do the GAP (dann) and
source-only references. For each it records the target SRCC (analysis only), every
label-free criterion and the held-out domain classifier's accuracy. Across seeds: the mean
and 95% t interval per window, each criterion's pick, and the Spearman correlation between
each criterion's scores and the target SRCC across windows (can it find good windows at all?).
Writes ``study.json``, ``study.md`` and ``study.png``.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import ConfigError
from ..metrics import srcc
from ..method.criteria import LABEL_FREE, Criterion
from ..run import checkpoint
from ..run.config import Config, apply, config_from_dict
from ..run.files import stage_checkpoint
from ..run.vocabulary import Method, SearchMode
from .evaluate import final_criteria, finished
from .loop import train
from .paired import t_interval
from .plan import WARMUP, Plan

REFERENCES = (Method.DANN, Method.SOURCE_ONLY)  # GAP, and no adaptation: from the same warm-up
# config fields that do not change the state at the end of the source warm-up
AFTER_WARMUP = {"method", "search_mode", "search_stride", "search_start", "search_end",
                "steps_per_position", "criterion", "finetune_from", "finetune_steps", "jitter",
                "dann_warmup_steps", "disc_warmup_steps", "alpha", "domain_weight", "disc_lr_scale", "progress",
                "eval_every", "checkpoint_every", "log_every", "best_criterion",
                "criterion_max_samples", "domain_fit_steps"}


def shared_warmup(cfg: Config, warmups: str, seed: int) -> str:
    """The source warm-up checkpoint of seed ``seed`` in a ``freqalign compare`` folder, after
    checking that it was trained with the same config up to the end of the warm-up."""
    path = stage_checkpoint(os.path.join(warmups, f"seed{seed}", Method.FREQALIGN), WARMUP)
    saved = config_from_dict(checkpoint.load(path)["config"]).to_dict()  # new fields: defaults
    differ = sorted(k for k, v in cfg.to_dict().items()
                    if k not in AFTER_WARMUP and saved.get(k) != v)
    if differ:
        raise ConfigError(f"--warmups {warmups}: {path} was trained with other values of "
                          f"{', '.join(differ)}")
    return path


def study(cfg: Config, out: str, seeds: int = 3, first_seed: int = 0, stride: int = 1,
          warmups: str = "") -> str:
    """Run the study into ``out``; return its markdown summary. With ``warmups`` (a
    ``freqalign compare`` folder of the same config) each seed starts from that run's source
    warm-up instead of training its own (the same state: training is deterministic)."""
    if seeds < 1 or stride < 1:
        raise ConfigError(f"--seeds and --stride must be at least 1, got {seeds}, {stride}")
    if cfg.steps_per_position < 1:
        raise ConfigError("steps_per_position must be at least 1: it is each window's budget")
    rows = []
    for seed in range(first_seed, first_seed + seeds):
        base = apply(Config(**cfg.to_dict()),
                     {"seed": seed, "method": Method.FREQALIGN, "search_mode": SearchMode.BRANCH,
                      "search_stride": stride, "finetune_steps": 0, "criterion": Criterion.DEV},
                     "study")
        fa_dir = os.path.join(out, f"seed{seed}", "windows")
        warm = shared_warmup(base, warmups, seed) if warmups else ""
        fa = finished(base, fa_dir) or train(base, fa_dir, fork_from=warm,
                                             keep_stage_checkpoints=True)
        row = {"seed": seed, "windows": [
            {"position": e["position"], "target_srcc": e["target_test_srcc"],
             "target_all_srcc": e["scores"]["target_all_srcc"],
             **{k: e["scores"][k] for k in (*LABEL_FREE, "domain_accuracy")}}
            for e in fa["search"]]}
        for method in REFERENCES:
            ref = apply(Config(**base.to_dict()), {"method": method}, "study")
            ref_dir = os.path.join(out, f"seed{seed}", method)
            ref_plan, fa_plan = Plan(ref), Plan(base)
            from_warm = warm and ref_plan.fork_point(fa_plan) == WARMUP  # fa_dir has none
            origin = warm if from_warm else ref_plan.fork_from(fa_plan, fa_dir)
            results = finished(ref, ref_dir) or train(ref, ref_dir, fork_from=origin)
            last = final_criteria(ref_dir)
            row[method] = {"target_srcc": results["target"]["srcc"],
                           "target_all_srcc": results["target_all"]["srcc"],
                           **{k: last[k] for k in (*LABEL_FREE, "domain_accuracy")}}
        rows.append(row)
    report = summarize(rows, cfg, stride)
    with open(os.path.join(out, "study.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    plot(report, os.path.join(out, "study.png"))
    text = markdown(report)
    with open(os.path.join(out, "study.md"), "w") as fh:
        fh.write(text)
    return text


def summarize(rows: list, cfg: Config, stride: int) -> dict:
    """Windows and references are scored on the same images: the whole target test split
    (``target_srcc``) and every target image (``target_all_srcc``, the primary metric); each
    window's ``vs_gap`` is its paired difference from GAP (dann) over seeds on the latter."""
    positions = [w["position"] for w in rows[0]["windows"]]
    keys = ("target_srcc", "target_all_srcc", *LABEL_FREE, "domain_accuracy")
    table = {k: np.array([[w[k] for w in r["windows"]] for r in rows]) for k in keys}  # seed x pos
    gap = np.array([r[Method.DANN]["target_all_srcc"] for r in rows])
    curve = [{"position": p, **{k: t_interval(table[k][:, i]) for k in keys},
              "vs_gap": t_interval(table["target_all_srcc"][:, i] - gap)}
             for i, p in enumerate(positions)]
    refs = {m: {k: t_interval([r[m][k] for r in rows]) for k in keys} for m in REFERENCES}
    mean_target = table["target_all_srcc"].mean(0)
    criteria = {}
    for c in LABEL_FREE:
        per_seed = [srcc(table[c][s], table["target_all_srcc"][s]) for s in range(len(rows))]
        pick = int(np.argmax(table[c].mean(0)))
        criteria[c] = {"spearman_with_target_srcc": t_interval(per_seed),
                       "spearman_of_means": srcc(table[c].mean(0), mean_target),
                       "pick": positions[pick], "pick_target_srcc": float(mean_target[pick]),
                       "per_seed_picks": [positions[int(np.argmax(table[c][s]))]
                                          for s in range(len(rows))]}
    best = int(np.argmax(mean_target))
    return {"config": cfg.to_dict(), "stride": stride, "window_size": cfg.window_size,
            "budget_per_window": cfg.steps_per_position, "seeds": [r["seed"] for r in rows],
            "positions": positions, "curve": curve, "references": refs, "criteria": criteria,
            "best_window": {"position": positions[best], "target_srcc": float(mean_target[best])},
            "windows_above_gap": [c["position"] for c in curve if c["vs_gap"]["low"] is not None
                                  and c["vs_gap"]["low"] > 0],
            "windows_below_gap": [c["position"] for c in curve if c["vs_gap"]["high"] is not None
                                  and c["vs_gap"]["high"] < 0],
            "rows": rows, "note": "target_srcc uses target labels: analysis only"}


def _ci(d: dict) -> str:
    if d["low"] is None:
        return f"{d['mean']:.4f}"
    return f"{d['mean']:.4f} [{d['low']:.4f}, {d['high']:.4f}]"


def _ci_signed(d: dict) -> str:
    if d["low"] is None:
        return f"{d['mean']:+.4f}"
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def markdown(report: dict) -> str:
    refs, n = report["references"], len(report["seeds"])
    lines = [f"# Transferability study: window size {report['window_size']}, stride "
             f"{report['stride']}, {report['budget_per_window']} adaptation steps per window, "
             f"{n} seed(s)", "",
             "Every window (and the GAP and source-only references) adapts from the same warm-up "
             "state of its seed with the same budget, and all are scored on the same images: "
             "every target image (`all`, the primary metric) and the whole target test split "
             "(`test`). Target SRCC uses target labels: analysis only. Mean [95% t interval] "
             "over seeds; `- GAP` is the paired difference from GAP (dann) per seed.", "",
             f"- source-only: target SRCC all {_ci(refs['source-only']['target_all_srcc'])}, "
             f"test {_ci(refs['source-only']['target_srcc'])}",
             f"- GAP (dann): target SRCC all {_ci(refs['dann']['target_all_srcc'])}, test "
             f"{_ci(refs['dann']['target_srcc'])}, domain classifier accuracy "
             f"{_ci(refs['dann']['domain_accuracy'])}",
             f"- best window: position {report['best_window']['position']}, target SRCC all "
             f"{report['best_window']['target_srcc']:.4f} (mean over seeds)",
             f"- windows above GAP (paired interval above 0): "
             f"{report['windows_above_gap'] or 'none'}; below GAP: "
             f"{report['windows_below_gap'] or 'none'}", "",
             "| position | target SRCC all | - GAP | target SRCC test | domain clf acc | " +
             " | ".join(LABEL_FREE) + " |", "|---|---|---|---|---|" + "---|" * len(LABEL_FREE)]
    for c in report["curve"]:
        lines.append(f"| {c['position']} | {_ci(c['target_all_srcc'])} | {_ci_signed(c['vs_gap'])} "
                     f"| {_ci(c['target_srcc'])} | {c['domain_accuracy']['mean']:.3f} | " +
                     " | ".join(f"{c[k]['mean']:+.4f}" for k in LABEL_FREE) + " |")
    lines += ["", "Can a label-free criterion find good windows? Spearman correlation between its "
              "scores and the target SRCC (all) across windows (per seed: mean [95% CI]; and of the "
              "seed means), and its pick:", "",
              "| criterion | Spearman per seed | Spearman of means | pick (mean) | its target SRCC "
              "| picks per seed |", "|---|---|---|---|---|---|"]
    for c, d in report["criteria"].items():
        lines.append(f"| {c} | {_ci(d['spearman_with_target_srcc'])} | "
                     f"{d['spearman_of_means']:+.3f} | {d['pick']} | {d['pick_target_srcc']:.4f} | "
                     f"{', '.join(map(str, d['per_seed_picks']))} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str) -> None:
    """Target SRCC against window position with its band, the references, the picks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = report["positions"]
    mean = np.array([c["target_all_srcc"]["mean"] for c in report["curve"]])
    low = np.array([c["target_all_srcc"]["low"] if c["target_all_srcc"]["low"] is not None else m
                    for c, m in zip(report["curve"], mean)])
    high = np.array([c["target_all_srcc"]["high"] if c["target_all_srcc"]["high"] is not None else m
                     for c, m in zip(report["curve"], mean)])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(pos, mean, "o-", label="window (mean over seeds)")
    ax.fill_between(pos, low, high, alpha=0.25, label="95% t interval")
    for m, style in ((Method.DANN, "--"), (Method.SOURCE_ONLY, ":")):
        ax.axhline(report["references"][m]["target_all_srcc"]["mean"], ls=style, color="k",
                   label=f"{'GAP (dann)' if m == Method.DANN else m}")
    for (c, d), marker in zip(report["criteria"].items(), ("v", "^", "s")):
        ax.plot([d["pick"]], [d["pick_target_srcc"]], marker, ms=10, label=f"{c} pick")
    ax.set_xlabel("window position (zigzag)")
    ax.set_ylabel("target SRCC, all target images (analysis only)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["study", "summarize", "markdown", "plot"]
