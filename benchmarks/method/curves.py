"""Learning curves of a ``freqalign compare`` folder: target and source-val SRCC against the
steps in each final model's history (``Plan.lineage_step``), mean and 95% t interval over seeds.

    freqalign compare --preset demo --seeds 3 --first-seed 30 --out runs/curve eval_every=40
    python -m benchmarks.method.curves runs/curve --out benchmarks/results/method/learning_curve

Points are the runs' ``eval`` records: ``target_test_srcc`` (the whole target test split
since issue 23, before it a sample of at most ``criterion_max_samples``: analysis only) and
the ``source`` criterion (the held-out source split's criterion sample). Freqalign's search
stage is left out (its positions branch from one state); forked baselines take their warm-up from the freqalign run they forked from.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
from collections import defaultdict

import matplotlib
import numpy as np
from scipy import stats

from freqalign.run.config import config_from_dict
from freqalign.train.plan import Plan
from freqalign.train.runlog import read_records

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METHODS = ("source-only", "dann", "freqalign", "target-oracle")


def curve(run_dir: str, donor: str = "") -> dict:
    """``{lineage step: (target SRCC, source SRCC)}`` of one run (with ``donor``'s records
    before this run's first one: the warm-up it forked from)."""
    with open(os.path.join(run_dir, "results.json")) as fh:
        plan = Plan(config_from_dict(json.load(fh)["config"]))
    points = {}
    for r in read_records(run_dir, "eval"):
        if r["stage"] != "search":
            points[plan.lineage_step(r["step"])] = (r["target_test_srcc"], r["source"])
    if donor:
        first = min(points)
        points.update({s: v for s, v in curve(donor).items() if s < first})
    return points


def mean_ci(values):
    v = np.asarray(values)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0
    return v.mean(), half


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--out", default="benchmarks/results/method/learning_curve")
    args = p.parse_args()
    by = defaultdict(lambda: defaultdict(list))  # method -> step -> [(target, source)]
    seeds = sorted(glob.glob(os.path.join(args.folder, "seed*")))
    for seed in seeds:
        fa = os.path.join(seed, "freqalign")
        for m in METHODS:
            donor = fa if m in ("source-only", "dann") else ""
            for step, v in curve(os.path.join(seed, m), donor).items():
                by[m][step].append(v)
    with open(os.path.join(seeds[0], "freqalign", "results.json")) as fh:
        warmup = config_from_dict(json.load(fh)["config"]).warmup_steps
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lines = [f"# Learning curves: `{args.folder}`, {len(seeds)} seeds", "",
             "Mean [95% t interval] over seeds at each evaluated step of the final model's "
             "history; target: the whole target test split (runs since issue 23; before it a "
             "sample of at most 128 images), analysis only; source: the held-out source "
             "split's criterion sample.", "",
             "| method | step | target SRCC | source-val SRCC |", "|---|---|---|---|"]
    for m in METHODS:
        steps = sorted(s for s in by[m] if len(by[m][s]) == len(seeds))
        for k, ax in enumerate(axes):
            mc = [mean_ci([v[k] for v in by[m][s]]) for s in steps]
            mu, half = np.array([c[0] for c in mc]), np.array([c[1] for c in mc])
            ax.plot(steps, mu, marker="o", ms=3, label=m)
            ax.fill_between(steps, mu - half, mu + half, alpha=0.15)
        for s in steps:
            t, src = mean_ci([v[0] for v in by[m][s]]), mean_ci([v[1] for v in by[m][s]])
            lines.append(f"| {m} | {s} | {t[0]:.3f} [±{t[1]:.3f}] | {src[0]:.3f} [±{src[1]:.3f}] |")
    for ax, title in zip(axes, ("target SRCC (analysis only)", "held-out source SRCC")):
        ax.set_xlabel("steps in the model's history")
        ax.set_title(title)
        ax.axvline(warmup, color="grey", lw=0.8, ls="--")  # the end of the source warm-up
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out + ".png", dpi=110)
    with open(args.out + ".md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
