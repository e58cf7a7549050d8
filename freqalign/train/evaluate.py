"""Evaluation in one place: predictions over a split (sharded over processes), the label-free
criteria and the probe during training, the best checkpoint, the final metrics and
``results.json``, finished runs read back (compare, study), and ``freqalign eval``.

Every prediction is a crop mean (``freqalign.scoring.crop_means``): an image's score and
features are the mean over its ``eval_crops`` grid of ``image_size`` crops.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import torch

from ..basis import window
from ..data.domains import open_images
from ..data.splits import fixed_subset
from ..errors import ConfigError
from ..metrics import all_metrics, srcc
from ..method.alignment import alignment
from ..method.criteria import Criterion, score_all
from ..method.search import SearchState, all_frequencies, probe_scores
from ..run import checkpoint
from ..run.config import config_from_dict
from ..run.files import results_file
from ..run.load import load_model
from ..run.renamed import renamed_keys, renamed_stages
from ..run.vocabulary import Method, SearchMode
from ..scoring import crop_means
from . import distributed
from .batches import eval_batches
from .plan import Plan
from .report import write_report
from .runlog import read_records

SPLITS = ("src_train", "tgt_train", "src_val", "tgt_val", "tgt_test")
REPORTED = ("srcc", "plcc", "krcc", "rmse", "plcc_logistic")  # the metrics in results.json
# the target image sets every metric is reported on: the test split; the held-out images no
# method reads the labels of (val + test); every target image (transductive: the labels of
# none of them are read, except by the target-oracle, which trains on those of tgt_train)
TARGET_SETS = {"test": ("tgt_test",), "heldout": ("tgt_val", "tgt_test"),
               "all": ("tgt_train", "tgt_val", "tgt_test")}


@torch.no_grad()
def predict(model, dataset, indices, cfg, device, coeffs: bool = False) -> dict:
    """Scores, labels and GAP features (and all-frequency coefficients) over ``indices``, each
    the mean over the image's ``eval_crops`` crops; sharded over processes and gathered back in
    order."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) \
        if torch.distributed.is_initialized() else (0, 1)
    was = model.training
    model.eval()
    parts = {"pred": [], "true": [], "feat": [], "coeffs": [], "order": []}
    frequencies = (lambda f: all_frequencies(f, cfg.grid)) if coeffs else None
    for images, scores, chunk in eval_batches(dataset, cfg.eval_batch_size, indices[rank::world]):
        means = crop_means(model, images, cfg.image_size, cfg.eval_crops, cfg.eval_batch_size,
                           device, frequencies)
        for key, value in means.items():
            parts[key].append(value)
        parts["true"].append(scores)
        parts["order"].extend(chunk)
    model.train(was)
    local = {k: (torch.cat(v).numpy() if v and k != "order" else v) for k, v in parts.items()}
    gathered = distributed.gather(local)
    order = np.concatenate([np.asarray(g["order"], dtype=np.int64) for g in gathered])
    sort = np.argsort(order, kind="stable")
    out = {}
    for key in ("pred", "true", "feat") + (("coeffs",) if coeffs else ()):
        arrays = [g[key] for g in gathered if len(g[key])]
        out[key] = np.concatenate(arrays)[sort]
    return out


class Evaluator:
    """A run's evaluations on its splits ``data``: the criteria on fixed samples of every split
    (at most ``criterion_max_samples`` each), the probe, the best checkpoint and the final
    metrics."""

    def __init__(self, data: dict, cfg, device):
        self.data, self.cfg, self.device = data, cfg, device
        self.samples = {k: fixed_subset(len(data[k]), cfg.criterion_max_samples, cfg.data_seed + i)
                        for i, k in enumerate(SPLITS)}

    def predict_samples(self, model, coeffs: bool = False, splits=SPLITS) -> dict:
        """Predictions on the fixed samples of ``splits``."""
        return {k: predict(model, self.data[k], self.samples[k], self.cfg, self.device, coeffs)
                for k in splits}

    def criteria(self, model) -> tuple:
        """All criteria on the held-out splits, and the target SRCC on all of the target test
        split (analysis only; ``target_all_srcc`` in the scores: on every target image), so that
        search positions and finished runs are scored on the same images."""
        distributed.broadcast_buffers(model)
        r = self.predict_samples(model, splits=("src_train", "tgt_train", "src_val", "tgt_val"))
        target = self.target(model)
        ev = {"src_train_feat": r["src_train"]["feat"], "tgt_train_feat": r["tgt_train"]["feat"],
              "src_val_feat": r["src_val"]["feat"], "src_val_pred": r["src_val"]["pred"],
              "src_val_true": r["src_val"]["true"], "tgt_val_feat": r["tgt_val"]["feat"],
              "tgt_val_pred": r["tgt_val"]["pred"], "tgt_val_true": r["tgt_val"]["true"]}
        scores = score_all(ev, self.cfg.domain_fit_steps)
        scores["target_all_srcc"] = srcc(*pooled(target, TARGET_SETS["all"]))
        return scores, srcc(*pooled(target, TARGET_SETS["test"]))

    def target(self, model) -> dict:
        """Predictions on every image of every target split, with the images' ``groups``."""
        return {k: {**predict(model, self.data[k], list(range(len(self.data[k]))), self.cfg,
                              self.device), "groups": np.asarray(self.data[k].groups)}
                for k in TARGET_SETS["all"]}

    def alignment(self, model, positions) -> dict:
        """``method.alignment`` on held-out images (source val; target val and test; at most
        ``alignment_samples`` of each domain): the accuracy of a fresh domain classifier,
        cross-validated over folds of whole content groups, on GAP features and on the band of
        each position in ``positions``."""
        distributed.broadcast_buffers(model)
        cap, seed = self.cfg.alignment_samples, self.cfg.data_seed
        held = {"source": [("src_val", self.data["src_val"])],
                "target": [(k, self.data[k]) for k in TARGET_SETS["heldout"]]}
        out, sizes = {}, {}
        for domain, parts in held.items():
            preds = [{**predict(model, d, list(range(len(d))), self.cfg, self.device, coeffs=True),
                      "groups": np.asarray(d.groups)} for _, d in parts]
            rows = fixed_subset(sum(len(p["feat"]) for p in preds), cap, seed)
            out[domain] = {k: np.concatenate([p[k] for p in preds])[rows]
                           for k in ("feat", "coeffs", "groups")}
            sizes[domain] = len(rows)
        measured = alignment(out["source"], out["target"], positions, self.cfg.window_size,
                             self.cfg.domain_fit_steps)
        return {**measured, "images": sizes, "folds": "content groups"}

    def log_criteria(self, model, state, stage: str, log, best_path: str) -> tuple:
        """The criteria, logged as an ``eval`` record; ``best_path`` gets the model when
        ``best_criterion`` is the best so far (``state.best_score``)."""
        scores, target_srcc = self.criteria(model)
        log.record(state.step, "eval", {"stage": stage, **scores, "target_test_srcc": target_srcc})
        best = self.cfg.best_criterion
        if scores[best] > state.best_score:
            state.best_score = scores[best]
            if distributed.is_main():
                checkpoint.save({"model": model.state_dict(), "config": self.cfg.to_dict(),
                                 "window": state.window, "step": state.step, "criterion": best,
                                 "score": state.best_score}, best_path)
        return scores, target_srcc

    def probe(self, model, search: SearchState, step: int) -> None:
        """Probe mode: score every position on frozen features (one all-frequency pass per
        split)."""
        r = self.predict_samples(model, coeffs=True)
        coeffs = {k: v["coeffs"] for k, v in r.items()}
        labels = {k: v["true"] for k, v in r.items()}
        for pos, s in zip(search.positions,
                          probe_scores(coeffs, labels, search.positions, self.cfg.window_size,
                                       self.cfg.domain_fit_steps)):
            search.record(pos, "probe", s, s.pop("target_test_srcc"), step)

    def final(self, model) -> tuple:
        """Predictions ``(target, source)``: on every target split (``{split: predictions}``)
        and on all of source val."""
        distributed.broadcast_buffers(model)
        src = self.data["src_val"]
        return self.target(model), predict(model, src, list(range(len(src))), self.cfg,
                                           self.device)


def pooled(target: dict, splits) -> tuple:
    """``(pred, true)`` of the target ``splits`` (names in ``target``), concatenated."""
    return tuple(np.concatenate([target[k][key] for k in splits]) for key in ("pred", "true"))


def make_results(cfg, plan: Plan, search: SearchState, tgt: dict, src: dict, run: dict) -> dict:
    """``results.json``: the final metrics of predictions ``tgt`` (by target split) and ``src``
    on every image set of ``TARGET_SETS`` (``target`` is the test split, ``target_heldout``
    and ``target_all`` the others), the selected window, the search curve and the plan; ``run``
    adds ``feature_map``, ``sizes``, ``splits``, ``seconds``, ``forked_from``,
    ``nonfinite_skipped`` (steps dropped by ``on_nonfinite=skip``) and ``alignment``."""
    def metrics(pred, true):
        return {k: v for k, v in all_metrics(pred, true).items() if k in REPORTED}

    target = {name: metrics(*pooled(tgt, splits)) for name, splits in TARGET_SETS.items()}
    source = metrics(src["pred"], src["true"])
    if plan.method is Method.FREQALIGN:
        pos = search.selected()
        selected = {"position": pos, "size": cfg.window_size,
                    "freqs": [list(f) for f in window(pos, cfg.window_size, cfg.grid)]}
    elif plan.method is Method.DANN:
        selected = {"position": None, "size": 1, "freqs": [[0, 0]]}  # GAP
    else:
        selected = None
    return {"method": cfg.method, "preset": cfg.preset, "seed": cfg.seed,
            "criterion": "probe" if plan.mode is SearchMode.PROBE else cfg.criterion,
            "search_mode": cfg.search_mode,
            "selection_uses_target_labels": plan.method is Method.FREQALIGN and
            plan.mode is not SearchMode.PROBE and cfg.criterion == Criterion.ORACLE,
            "selected_window": selected, "target": target["test"],
            "target_heldout": target["heldout"], "target_all": target["all"],
            "target_all_reads_labels": plan.method is Method.TARGET_ORACLE,
            "source_val": source, "alignment": run["alignment"],
            "search": search.entries, "feature_map": list(run["feature_map"]),
            "sizes": run["sizes"], "splits": run["splits"], "eval_crops": cfg.eval_crops,
            "steps": plan.total, "budget": plan.budget, "stages": plan.as_list(),
            "seconds": round(run["seconds"], 1), "forked_from": run["forked_from"] or None,
            "nonfinite_skipped": run["nonfinite_skipped"],
            "config": cfg.to_dict(),
            "note": "target_test_srcc reads target labels: analysis only"}


def write_results(out: str, results: dict, tgt: dict) -> None:
    """``results.json``, ``target_predictions.npz`` (``pred``, ``true``: the test split; ``all_*``:
    every target image with its ``group`` and ``split``, 0/1/2 = train/val/test) and
    ``report.md`` into run folder ``out``."""
    with open(results_file(out), "w") as fh:
        json.dump(results, fh, indent=2)
    splits = TARGET_SETS["all"]
    np.savez(os.path.join(out, "target_predictions.npz"), pred=tgt["tgt_test"]["pred"],
             true=tgt["tgt_test"]["true"],
             **{f"all_{key}": np.concatenate([tgt[k][key] for k in splits])
                for key in ("pred", "true", "groups")},
             all_split=np.concatenate([np.full(len(tgt[k]["pred"]), i)
                                       for i, k in enumerate(splits)]))
    write_report(out, results, tgt["tgt_test"])


def finished(cfg, run_dir: str) -> Optional[dict]:
    """The results of a finished run of exactly ``cfg`` in ``run_dir`` (so an interrupted or
    extended compare or study reuses its runs), else None. The config and plan are the ones
    stored in the results themselves (a crashed rerun with another config rewrites config.yaml,
    not results.json); a field added to the config since the run counts at its default, which
    by convention is the behaviour from before the field existed; renamed fields and stages
    (``run.renamed``) are read under their new names."""
    try:
        with open(results_file(run_dir)) as fh:
            results = json.load(fh)
        saved = config_from_dict(results["config"]).to_dict()
    except (FileNotFoundError, json.JSONDecodeError, KeyError, ConfigError):
        return None
    where = results_file(run_dir)
    for key, renamed in (("stages", renamed_stages(results.get("stages", []), where)),
                         ("search", [renamed_keys(e, where) for e in results.get("search", [])])):
        if key in results:
            results[key] = renamed
    same = saved == cfg.to_dict() and results.get("stages") == Plan(cfg).as_list()
    return results if same else None


def final_criteria(run_dir: str) -> dict:
    """The last ``eval`` record of the run in ``run_dir``: its criteria at the end of training."""
    return read_records(run_dir, "eval")[-1]


def evaluate_checkpoint(path: str, dataset: str, device: Optional[str] = None,
                        batch_size: int = 128, crops: int = 0) -> dict:
    """Metrics (SRCC, KRCC, PLCC, PLCC after logistic fit, RMSE) of checkpoint ``path`` on all of
    ``dataset``, read as in training (``open_images``), each image scored by the mean over its
    ``crops`` grid crops (0: the checkpoint's ``eval_crops``)."""
    model, cfg, ck, dev = load_model(path, device)
    cfg.eval_batch_size, cfg.eval_crops = batch_size, crops or cfg.eval_crops
    data = open_images(dataset, cfg)
    out = predict(model, data, list(range(len(data))), cfg, dev)
    return {"checkpoint": path, "dataset": dataset, "n": len(data), "method": cfg.method,
            "step": ck.get("step"), "eval_crops": cfg.eval_crops,
            **all_metrics(out["pred"], out["true"])}


__all__ = ["SPLITS", "predict", "Evaluator", "make_results", "write_results", "finished",
           "final_criteria", "evaluate_checkpoint"]
