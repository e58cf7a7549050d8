"""The trainer: warm-up, frequency movement and perturbation fine-tuning (DESIGN section 4)
in one loop that reads top to bottom. Baselines run the same loop with other stages.

``train(cfg, out)`` runs a method into a run folder and returns its results dict.
Stage plan (``Config.stages``), by optimizer step:
  warmup      source-only supervised                         (every method)
  dann-warmup + discriminator on GAP, gradient reversal        (freqalign, dann)
  search      window at positions p0, p0+s, ... (move mode)   (freqalign)
  finetune    selected window jittered by [-r, r], decayed lr  (freqalign)
  dann / source / oracle: the baselines' remaining budget.
"""
from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import metrics as iqa_metrics
from ..basis import window
from ..method.criteria import score_all
from ..method.model import build_model, check_grid, dann_lambda
from ..method.search import SearchState, all_frequencies, jitter, probe_scores
from . import checkpoint, distributed
from .batches import BatchStream, crop_batch, eval_batches
from .config import Config, save_yaml
from .report import write_report

ADVERSARIAL = ("dann-warmup", "dann", "search", "finetune")
CRASH_ENV = "FREQALIGN_CRASH_AT_STEP"  # testing hook: hard-exit after this step (simulated kill)


# ----------------------------------------------------------------------------- data
def load_data(cfg: Config, rank: int = 0) -> dict:
    """Content-disjoint splits: src_train/src_val and tgt_train/tgt_val/tgt_test."""
    from ..data.registry import open_dataset
    from ..data.splits import split_by_group

    def open_(spec):
        return open_dataset(spec, image_size=cfg.data_size or None, cache_dir=cfg.cache_dir or None,
                            seed=cfg.data_seed)

    if rank == 0:  # rank 0 generates and caches first; the others then read the cache
        src, tgt = open_(cfg.source), open_(cfg.target)
    distributed.barrier()
    if rank != 0:
        src, tgt = open_(cfg.source), open_(cfg.target)
    if cfg.max_per_domain:
        src, tgt = (_cap(d, cfg.max_per_domain, cfg.data_seed) for d in (src, tgt))
    sv, tv, tt = cfg.source_val_fraction, cfg.target_val_fraction, cfg.target_test_fraction
    s = split_by_group(src, {"train": 1 - sv, "val": sv}, cfg.data_seed)
    t = split_by_group(tgt, {"train": 1 - tv - tt, "val": tv, "test": tt}, cfg.data_seed)
    return {"src_train": s["train"], "src_val": s["val"], "tgt_train": t["train"],
            "tgt_val": t["val"], "tgt_test": t["test"]}


def _cap(dataset, n: int, seed: int):
    from ..data.splits import IQASubset

    if len(dataset) <= n:
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    return IQASubset(dataset, keep.tolist(), name=dataset.name)


def _sample(n: int, cap: int, seed: int) -> list:
    """A fixed subset of at most ``cap`` indices (for the criteria's feature passes)."""
    if n <= cap:
        return list(range(n))
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap]).tolist()


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model, dataset, indices, cfg, device, coeffs: bool = False) -> dict:
    """Scores, labels and GAP features (and all-frequency coefficients) over ``indices``,
    sharded over processes and gathered back in order."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) \
        if torch.distributed.is_initialized() else (0, 1)
    was = model.training
    model.eval()
    mine = indices[rank::world]
    parts = {"pred": [], "true": [], "feat": [], "coeffs": [], "order": []}
    for images, scores, chunk in eval_batches(dataset, cfg.eval_batch_size, mine):
        x = crop_batch(images, cfg.image_size).to(device)
        f = model.features(x)
        g = model.gap(f)
        parts["pred"].append(torch.sigmoid(model.regressor(g)).squeeze(1).float().cpu())
        parts["feat"].append(g.float().cpu())
        if coeffs:
            parts["coeffs"].append(all_frequencies(f, cfg.grid).float().cpu())
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


def evaluate_criteria(model, data, samples, cfg, device) -> tuple:
    """All criteria on the held-out splits, and the target-test SRCC (analysis only)."""
    r = {k: predict(model, data[k], samples[k], cfg, device) for k in samples}
    ev = {"src_train_feat": r["src_train"]["feat"], "tgt_train_feat": r["tgt_train"]["feat"],
          "src_val_feat": r["src_val"]["feat"], "src_val_pred": r["src_val"]["pred"],
          "src_val_true": r["src_val"]["true"], "tgt_val_feat": r["tgt_val"]["feat"],
          "tgt_val_pred": r["tgt_val"]["pred"], "tgt_val_true": r["tgt_val"]["true"]}
    scores = score_all(ev, cfg.domain_fit_steps)
    target_srcc = iqa_metrics.srcc(r["tgt_test"]["pred"], r["tgt_test"]["true"])
    return scores, target_srcc


def run_probe(model, data, samples, cfg, device, search: SearchState, step: int) -> None:
    """Probe mode: score every position on frozen features (one all-frequency pass per split)."""
    r = {k: predict(model, data[k], samples[k], cfg, device, coeffs=True) for k in samples}
    coeffs = {k: v["coeffs"] for k, v in r.items()}
    labels = {k: v["true"] for k, v in r.items()}
    for pos, s in zip(search.positions,
                      probe_scores(coeffs, labels, search.positions, cfg.window_size,
                                   cfg.domain_fit_steps)):
        search.record(pos, "probe", s, s.pop("oracle_target_srcc"), step)


# ----------------------------------------------------------------------------- schedules
def lr_factor(cfg: Config, step: int) -> float:
    """1 until the last ``finetune_steps`` steps, then ``finetune_lr_scale`` cosine-decayed to 0
    (every method, so baselines see the same schedule)."""
    start = cfg.total_steps() - cfg.finetune_steps
    if step < start or cfg.finetune_steps == 0:
        return 1.0
    t = (step - start) / cfg.finetune_steps
    return cfg.finetune_lr_scale * 0.5 * (1.0 + math.cos(math.pi * t))


def stage_at(stages, step: int) -> tuple:
    """``(name, step within the stage, stage length)`` for a global step."""
    start = 0
    for name, n in stages:
        if step < start + n:
            return name, step - start, n
        start += n
    return stages[-1][0], stages[-1][1], stages[-1][1]


def stages_done(stages, step: int) -> list:
    """The stages completed by ``step`` (a fork needs them to be a prefix of its own plan)."""
    done, end = [], 0
    for name, n in stages:
        end += n
        if end > step:
            break
        done.append((name, n))
    return done


def stage_ends(stages) -> dict:
    ends, total = {}, 0
    for name, n in stages:
        total += n
        ends[total] = name
    return ends


# ----------------------------------------------------------------------------- the run
def train(cfg: Config, out: str, resume: bool = False, fork_from: str = "",
          keep_stage_checkpoints: bool = False) -> dict:
    """Run ``cfg.method`` into folder ``out`` (resuming from ``out/checkpoints/last.pt`` with
    ``resume``; starting from another run's stage-boundary checkpoint with ``fork_from``)."""
    t0 = time.time()
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    rank, world, device = distributed.setup(cfg.device)
    main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes")

    data = load_data(cfg, rank)
    model = build_model(cfg).to(device)
    feature_hw = check_grid(model, cfg)
    backbone = list(model.backbone.parameters())
    heads = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.Adam([{"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale},
                            {"params": heads, "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    per_rank = cfg.batch_size // world
    gens = {"augment": torch.Generator().manual_seed(cfg.seed * 1000 + 1 + rank),
            "jitter": torch.Generator().manual_seed(cfg.seed * 1000 + 2)}
    streams = {"src": BatchStream(data["src_train"], per_rank, cfg.seed * 2, rank, world, cfg.workers),
               "tgt": BatchStream(data["tgt_train"], per_rank, cfg.seed * 2 + 1, rank, world,
                                  cfg.workers)}
    samples = {k: _sample(len(data[k]), cfg.criterion_max_samples, cfg.data_seed + i)
               for i, k in enumerate(("src_train", "tgt_train", "src_val", "tgt_val", "tgt_test"))}
    search = SearchState(cfg.positions(), cfg.window_size, cfg.grid)
    stages, total = cfg.stages(), cfg.total_steps()
    last_pos = cfg.grid ** 2 - cfg.window_size
    step, best_score, window_pos = 0, -math.inf, None
    running = {"l1": 0.0, "domain": 0.0, "n": 0}  # loss sums since the last log record
    ckpt_dir = os.path.join(out, "checkpoints")

    def snapshot() -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "search": search.state_dict(), "best_score": best_score,
                "streams": {k: s.consumed for k, s in streams.items()},
                "rng": checkpoint.rng_state(gens), "config": cfg.to_dict(),
                "stages_done": stages_done(stages, step), "window": window_pos, "running": running,
                "feature_hw": feature_hw}

    source = os.path.join(ckpt_dir, "last.pt") if resume else fork_from
    if source:
        ck = checkpoint.load(source)
        if fork_from and [tuple(s) for s in ck["stages_done"]] != stages[:len(ck["stages_done"])]:
            raise ValueError(f"cannot fork {cfg.method} from {fork_from}: its completed stages "
                             f"{ck['stages_done']} are not a prefix of {stages}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, window_pos = ck["step"], ck["window"]
        for k, s in streams.items():
            s.consumed = ck["streams"][k]
        if resume:
            search.load_state_dict(ck["search"])
            best_score, running = ck["best_score"], ck["running"]
        checkpoint.set_rng_state(ck["rng"], gens)

    # outputs (rank 0 only)
    log, writer = None, None
    if main:
        os.makedirs(ckpt_dir, exist_ok=True)
        save_yaml(cfg, os.path.join(out, "config.yaml"))
        log_path = os.path.join(out, "metrics.jsonl")
        kept = []
        if resume and os.path.exists(log_path):  # drop records from after the checkpoint
            kept = [line for line in open(log_path) if json.loads(line)["step"] <= step]
        log = open(log_path, "w")
        log.writelines(kept)
        log.flush()
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(os.path.join(out, "tb"), purge_step=step if step else None)

    def record(kind: str, values: dict):
        if main:
            log.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
            log.flush()
            for k, v in values.items():
                if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    writer.add_scalar(f"{kind}/{k}", v, step)

    def evaluate_and_keep_best(stage: str) -> tuple:
        nonlocal best_score
        distributed.broadcast_buffers(model)
        scores, target_srcc = evaluate_criteria(model, data, samples, cfg, device)
        record("eval", {"stage": stage, **scores, "oracle_target_srcc": target_srcc})
        if scores[cfg.best_criterion] > best_score:
            best_score = scores[cfg.best_criterion]
            if main:
                checkpoint.save({"model": model.state_dict(), "config": cfg.to_dict(),
                                 "window": window_pos, "step": step, "criterion": cfg.best_criterion,
                                 "score": best_score}, os.path.join(ckpt_dir, "best.pt"))
        return scores, target_srcc

    crash_at = int(os.environ.get(CRASH_ENV, "0") or 0)
    ends = stage_ends(stages)
    bar = tqdm(total=total, initial=step, desc=cfg.method, disable=not (main and cfg.progress),
               dynamic_ncols=True, leave=False)
    model.train()
    while step < total:
        stage, t_in, _ = stage_at(stages, step)

        # -- where the discriminator pools this step
        if stage in ("dann-warmup", "dann"):
            window_pos = None  # GAP: plain DANN
        elif stage == "search":
            window_pos = search.positions[t_in // cfg.search_steps]
        elif stage == "finetune":
            if t_in == 0 and cfg.search_mode == "probe" and not search.entries:
                run_probe(model, data, samples, cfg, device, search, step)
            if t_in == 0 and cfg.finetune_from == "selected" and search.best_model is not None:
                model.load_state_dict(search.best_model)
            selected = search.selected()
            window_pos = jitter(selected, cfg.jitter, last_pos, gens["jitter"])
        model.set_window(window_pos, cfg.window_size)

        # -- schedules
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lr_factor(cfg, step)
        lam = dann_lambda((step - cfg.warmup_steps) / max(cfg.adapt_steps(), 1), cfg.alpha)

        # -- one step
        if stage == "oracle":  # supervised on target labels: the ceiling
            images, y = next(streams["tgt"])
            x = crop_batch(images, cfg.image_size, gens["augment"], cfg.hflip).to(device)
            pred, _, _ = net(x, 0.0)
            l1, dom = F.l1_loss(pred, y.to(device)), torch.zeros((), device=device)
        elif stage in ADVERSARIAL:
            images_s, y = next(streams["src"])
            images_t, _ = next(streams["tgt"])  # target labels are never read here
            x = crop_batch(images_s + images_t, cfg.image_size, gens["augment"], cfg.hflip).to(device)
            pred, logit, _ = net(x, lam)
            domain = torch.cat([torch.ones(len(images_s)), torch.zeros(len(images_t))]).to(device)
            l1 = F.l1_loss(pred[:len(images_s)], y.to(device))
            dom = F.binary_cross_entropy_with_logits(logit, domain)
        else:  # warmup / source: source-only supervised
            images, y = next(streams["src"])
            x = crop_batch(images, cfg.image_size, gens["augment"], cfg.hflip).to(device)
            pred, _, _ = net(x, 0.0)
            l1, dom = F.l1_loss(pred, y.to(device)), torch.zeros((), device=device)
        loss = l1 + cfg.domain_weight * dom
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        running["l1"] += float(l1.detach())
        running["domain"] += float(dom.detach())
        running["n"] += 1

        # -- logging
        if step % cfg.log_every == 0 or step == total:
            n = max(running["n"], 1)
            values = {"stage": stage, "l1": distributed.mean(running["l1"] / n),
                      "domain": distributed.mean(running["domain"] / n),
                      "lr": opt.param_groups[1]["lr"], "lambda": lam,
                      "window": -1 if window_pos is None else window_pos}
            record("train", values)
            running = {"l1": 0.0, "domain": 0.0, "n": 0}
            if main:
                bar.write(f"step {step:>5}/{total} {stage:<11} l1 {values['l1']:.4f} "
                          f"domain {values['domain']:.4f} lr {values['lr']:.2e} "
                          f"window {values['window']:>2} {time.time() - t0:6.1f}s")

        # -- frequency movement: score the position that just finished its budget
        if stage == "search" and (t_in + 1) % cfg.search_steps == 0:
            scores, target_srcc = evaluate_and_keep_best(stage)
            if search.record(window_pos, cfg.criterion, scores, target_srcc, step):
                search.best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if main:
                bar.write(f"  window {window_pos:>2} {cfg.criterion} {scores[cfg.criterion]:+.4f} "
                          f"(oracle target SRCC {target_srcc:.3f}, analysis only)")
        elif step % cfg.eval_every == 0 or step == total:
            evaluate_and_keep_best(stage)

        # -- checkpoints
        if step % cfg.checkpoint_every == 0 or step in ends:
            if main:
                checkpoint.save(snapshot(), os.path.join(ckpt_dir, "last.pt"))
                if keep_stage_checkpoints and step in ends:
                    checkpoint.save(snapshot(), os.path.join(ckpt_dir, f"after-{ends[step]}.pt"))
            distributed.barrier()
        if crash_at and step == crash_at:
            os._exit(17)
    bar.close()

    # probe mode with no fine-tuning still reports its curve
    if cfg.method == "freqalign" and cfg.search_mode == "probe" and not search.entries:
        run_probe(model, data, samples, cfg, device, search, step)

    # -- final evaluation on all of target test and source val
    distributed.broadcast_buffers(model)
    everything = lambda k: list(range(len(data[k])))  # noqa: E731
    tgt = predict(model, data["tgt_test"], everything("tgt_test"), cfg, device)
    src = predict(model, data["src_val"], everything("src_val"), cfg, device)
    results = make_results(cfg, search, tgt, src, feature_hw, time.time() - t0, fork_from, data)
    if main:
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=2)
        np.savez(os.path.join(out, "target_predictions.npz"), pred=tgt["pred"], true=tgt["true"])
        log.close()
        writer.close()
        write_report(out, results, tgt)
    distributed.barrier()
    return results


def make_results(cfg, search, tgt, src, feature_hw, seconds, fork_from, data) -> dict:
    keep = ("srcc", "plcc", "krcc", "rmse", "plcc_logistic")
    target = {k: v for k, v in iqa_metrics.evaluate(tgt["pred"], tgt["true"]).items() if k in keep}
    source = {k: v for k, v in iqa_metrics.evaluate(src["pred"], src["true"]).items() if k in keep}
    if cfg.method == "freqalign":
        pos = search.selected()
        selected = {"position": pos, "size": cfg.window_size,
                    "freqs": [list(f) for f in window(pos, cfg.window_size, cfg.grid)]}
    elif cfg.method == "dann":
        selected = {"position": None, "size": 1, "freqs": [[0, 0]]}  # GAP
    else:
        selected = None
    return {"method": cfg.method, "preset": cfg.preset, "seed": cfg.seed,
            "criterion": cfg.criterion if cfg.search_mode == "move" else "probe",
            "selection_uses_target_labels": cfg.method == "freqalign" and cfg.search_mode == "move"
            and cfg.criterion == "oracle",
            "selected_window": selected, "target": target, "source_val": source,
            "search": search.entries, "feature_map": list(feature_hw),
            "sizes": {k: len(v) for k, v in data.items()}, "steps": cfg.total_steps(),
            "stages": [list(s) for s in cfg.stages()], "seconds": round(seconds, 1),
            "forked_from": fork_from or None,
            "note": "oracle_target_srcc in the search uses target labels: analysis only"}
