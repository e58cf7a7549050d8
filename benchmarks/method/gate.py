"""The gate of protocol.md on development seeds: does each adversarial method align what it
claims to, at an acceptable cost on the source task?

Per seed: freqalign (keeping its stage checkpoints), then source-only and dann forked from its
warm-ups, as ``freqalign compare`` runs them (no target-oracle: the gate does not need it).
Prints and appends to ``gate.md`` one row per configuration: the three gate quantities
(means over seeds, label-free) and, for analysis only, the target SRCC.

    python -m benchmarks.method.gate --name baseline --out runs/gate/baseline key=value ...
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from freqalign.data.domains import load_data
from freqalign.method import stem_cache
from freqalign.scoring import load_model
from freqalign.run.config import Config, apply, make_config, parse_overrides
from freqalign.train.evaluate import Evaluator, finished
from freqalign.train.loop import train
from freqalign.train.plan import Plan

SEEDS = (10, 11, 12)  # protocol.md: the development seeds
MARGIN, SOURCE_COST = 0.10, 0.05


def run_seed(cfg: Config, out: str, seed: int) -> dict:
    """``{method: results}`` of freqalign, source-only and dann for ``seed``."""
    base = apply(Config(**cfg.to_dict()), {"seed": seed, "method": "freqalign"}, "gate")
    fa_dir = os.path.join(out, f"seed{seed}", "freqalign")
    runs = {"freqalign": finished(base, fa_dir) or train(base, fa_dir, keep_stage_checkpoints=True)}
    for method in ("source-only", "dann"):
        c = apply(Config(**base.to_dict()), {"method": method}, "gate")
        run_dir = os.path.join(out, f"seed{seed}", method)
        runs[method] = finished(c, run_dir) or train(c, run_dir,
                                                     fork_from=Plan(c).fork_from(Plan(base), fa_dir))
    return {m: remeasure(os.path.join(out, f"seed{seed}", m), r) for m, r in runs.items()}


def remeasure(run_dir: str, results: dict) -> dict:
    """``results`` with its ``alignment`` measured again on the run's final model
    (``checkpoints/last.pt``) when it was measured before the folds held whole content groups
    (the old measure is kept as ``alignment_random_folds``); results.json is rewritten."""
    if results["alignment"].get("folds") == "content groups":
        return results
    model, saved, _, device = load_model(os.path.join(run_dir, "checkpoints", "last.pt"), "cpu")
    data, _ = load_data(saved, stem_cache.wrapper(saved, device, progress=False))
    model.from_stem = stem_cache.enabled(saved)
    results["alignment_random_folds"] = results["alignment"]
    results["alignment"] = Evaluator(data, saved, device).alignment(model, Plan(saved).positions)
    with open(os.path.join(run_dir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    return results


def gate_row(runs: dict) -> dict:
    """The gate quantities of one seed's runs."""
    so, dann, fa = runs["source-only"], runs["dann"], runs["freqalign"]
    p = str(fa["selected_window"]["position"])
    return {"gap_drop": so["alignment"]["gap"] - dann["alignment"]["gap"],
            "band_drop": so["alignment"]["bands"][p] - fa["alignment"]["bands"][p],
            "src_cost_dann": so["source_val"]["srcc"] - dann["source_val"]["srcc"],
            "src_cost_fa": so["source_val"]["srcc"] - fa["source_val"]["srcc"],
            "acc_gap": {m: r["alignment"]["gap"] for m, r in runs.items()},
            "acc_band": {m: r["alignment"]["bands"][p] for m, r in runs.items()},
            "window": int(p),
            "src_srcc": {m: r["source_val"]["srcc"] for m, r in runs.items()},
            "target_all_srcc": {m: r["target_all"]["srcc"] for m, r in runs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--table", default="benchmarks/results/method/gate.md")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    overrides = {"split_by_seed": True, "progress": False, **parse_overrides(args.overrides)}
    cfg = make_config(args.preset, overrides=overrides)
    rows = [gate_row(run_seed(cfg, args.out, s)) for s in args.seeds]
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in ("gap_drop", "band_drop", "src_cost_dann", "src_cost_fa")}
    met = mean["gap_drop"] >= MARGIN and mean["band_drop"] >= MARGIN and \
        max(mean["src_cost_dann"], mean["src_cost_fa"]) <= SOURCE_COST

    def per(key, m):  # one value per seed
        return "/".join(f"{r[key][m]:.3f}" for r in rows)

    line = (f"| {args.name} | {' '.join(args.overrides) or '-'} | {mean['gap_drop']:+.3f} | "
            f"{mean['band_drop']:+.3f} | {mean['src_cost_dann']:+.3f} | {mean['src_cost_fa']:+.3f} "
            f"| {'**met**' if met else 'no'} | {per('acc_gap', 'source-only')} ; "
            f"{per('acc_gap', 'dann')} | {per('acc_band', 'source-only')} ; "
            f"{per('acc_band', 'freqalign')} ({'/'.join(str(r['window']) for r in rows)}) | "
            f"{per('src_srcc', 'source-only')} ; {per('src_srcc', 'dann')} ; "
            f"{per('src_srcc', 'freqalign')} | {per('target_all_srcc', 'source-only')} ; "
            f"{per('target_all_srcc', 'dann')} ; {per('target_all_srcc', 'freqalign')} |")
    print(line)
    with open(args.table, "a") as fh:
        fh.write(line + "\n")
    with open(os.path.join(args.out, "gate.json"), "w") as fh:
        json.dump({"name": args.name, "overrides": args.overrides, "rows": rows, "mean": mean,
                   "met": met}, fh, indent=2)


if __name__ == "__main__":
    main()
