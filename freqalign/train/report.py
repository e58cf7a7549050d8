"""``report.md`` and its PNG plots (search curve, training curves, target scatter) for a run."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .runlog import read_records  # noqa: E402


def plot_search(results: dict, path: str) -> bool:
    entries = results["search"]
    if not entries:
        return False
    pos = [e["position"] for e in entries]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(pos, [e["score"] for e in entries], "o-", color="C0",
            label=f"criterion: {entries[0]['criterion']}")
    ax.set_xlabel("window position (zigzag)")
    ax.set_ylabel("criterion score (higher = better)", color="C0")
    sel = results["selected_window"]["position"]
    ax.axvline(sel, color="C3", ls=":", label=f"selected {sel}")
    twin = ax.twinx()
    twin.plot(pos, [e["target_test_srcc"] for e in entries], "s--", color="C1", alpha=0.7)
    twin.set_ylabel("target test SRCC (analysis only)", color="C1")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Frequency movement")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_training(log: list, path: str) -> bool:
    train = [r for r in log if r["kind"] == "train"]
    evals = [r for r in log if r["kind"] == "eval"]
    if not train:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot([r["step"] for r in train], [r["quality"] for r in train], label="source quality loss")
    adversarial = [r for r in train if r.get("domain") is not None]
    a.plot([r["step"] for r in adversarial], [r["domain"] for r in adversarial], label="domain BCE")
    a.plot([r["step"] for r in adversarial], [r["disc_acc"] for r in adversarial], "--",
           label="discriminator accuracy")
    a.set_xlabel("step")
    a.legend(fontsize=8)
    a.set_title("Losses")
    if evals:
        steps = [r["step"] for r in evals]
        b.plot(steps, [r["source"] for r in evals], "o-", ms=3, label="source val SRCC")
        b.plot(steps, [r["target_test_srcc"] for r in evals], "s--", ms=3,
               label="target test SRCC (analysis only)")
        b.plot(steps, [r["domain_accuracy"] for r in evals], ":", label="domain clf accuracy")
        b.legend(fontsize=8)
    b.set_xlabel("step")
    b.set_title("Held-out evaluation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_scatter(pred, true, srcc: float, path: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(true, pred, s=6, alpha=0.5)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("true score (target test)")
    ax.set_ylabel("predicted score")
    ax.set_title(f"Target test, SRCC {srcc:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metrics_row(name: str, m: dict) -> str:
    return f"| {name} | {m['srcc']:.4f} | {m['plcc']:.4f} | {m['krcc']:.4f} | {m['rmse']:.4f} |"


def write_report(out: str, results: dict, target_predictions: dict) -> None:
    """Write ``report.md`` and its PNGs into the run folder ``out``."""
    lines = [f"# FreqAlign run: {results['method']}", "",
             f"Preset `{results['preset']}`, seed {results['seed']}, {results['steps']} steps, "
             f"{results['seconds']} s.", "",
             "| split | SRCC | PLCC | KRCC | RMSE |", "|---|---|---|---|---|",
             _metrics_row("target, every image", results["target_all"]),
             _metrics_row("target held-out (val + test)", results["target_heldout"]),
             _metrics_row("target test", results["target"]),
             _metrics_row("source val", results["source_val"]), ""]
    align = results["alignment"]
    lines += ["## Alignment", "",
              f"Balanced accuracy of a domain classifier fit fresh for the measurement, "
              f"cross-validated over folds of whole content groups, on held-out images "
              f"({align['images']['source']} source, {align['images']['target']} target); 0.5: "
              f"the domains are indistinguishable on those features. Compare with a "
              f"source-only run of the same seed (`freqalign compare` does).", "",
              "| features | GAP | " + " | ".join(f"band {p}" for p in align["bands"]) + " |",
              "|---|---|" + "---|" * len(align["bands"]),
              f"| accuracy | {align['gap']:.3f} | " +
              " | ".join(f"{v:.3f}" for v in align["bands"].values()) + " |", ""]
    sel = results["selected_window"]
    if sel:
        where = "GAP (DANN)" if sel["position"] is None else f"position {sel['position']}"
        lines += [f"Discriminator pooling: {where}, frequencies {sel['freqs']}.", ""]
    if plot_search(results, os.path.join(out, "search.png")):
        lines += [f"## Frequency movement (criterion `{results['criterion']}`)", "",
                  "The target test SRCC column reads target labels: analysis only.", "",
                  "| position | freqs | score | target test SRCC |", "|---|---|---|---|"]
        lines += [f"| {e['position']} | {e['freqs']} | {e['score']:+.4f} | "
                  f"{e['target_test_srcc']:.4f} |" for e in results["search"]]
        lines += ["", "![search curve](search.png)", ""]
    if plot_training(read_records(out), os.path.join(out, "training.png")):
        lines += ["## Training", "", "![training curves](training.png)", ""]
    plot_scatter(target_predictions["pred"], target_predictions["true"], results["target"]["srcc"],
                 os.path.join(out, "target_scatter.png"))
    lines += ["## Target predictions", "", "![predicted vs true](target_scatter.png)", ""]
    with open(os.path.join(out, "report.md"), "w") as fh:
        fh.write("\n".join(lines))
