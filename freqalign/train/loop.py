"""The trainer: warm-up, frequency movement and perturbation fine-tuning (DESIGN section 4)
in one loop that reads top to bottom. Baselines run the same loop with other stage plans.

``train(cfg, out)`` runs a method into a run folder and returns its results dict. The plan
(``Config.stages``) is a list of ``Stage``s; each says what a step trains on and where the
discriminator pools:
  warmup      source        no discriminator                     (every method)
  dann-warmup both          GAP (plain DANN)                     (freqalign, dann)
  search      both          positions p0, p0+s, ...              (freqalign; branch or move)
  finetune    both          the selected position, jittered      (freqalign)
  dann / source / oracle: the baselines' remaining budget (oracle trains on target labels).
In ``branch`` mode every search position starts from the state saved when the search began
(``checkpoints/search-origin.pt``: weights, optimiser moments, batch streams and RNGs), so
positions differ only by their window; the best position's state is kept in
``checkpoints/search-best.pt``, and fine-tuning continues from it.
Under DDP each process has its own random streams (``process_seed``: its global RNGs, so its
dropout, and its crop generator; the jitter generator is shared, so all ranks pool at the same
window) and every checkpoint holds every process's RNG states, so a resume or a branch restart
gives each rank back its own.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import metrics as iqa_metrics
from ..errors import ConfigError
from ..basis import window
from ..method.model import build_model, check_grid, dann_lambda
from ..method.search import SearchState, jitter
from . import checkpoint, distributed
from .batches import BatchStream, crop_batch, open_images
from .config import Config, Stage, save_yaml
from .evaluate import SPLITS, evaluate_criteria, predict, run_probe
from .report import write_report


# ----------------------------------------------------------------------------- data
def load_data(cfg: Config, rank: int = 0) -> tuple:
    """``(splits, how)``: src_train/src_val and tgt_train/tgt_val/tgt_test, and how each domain
    was split (``{"source": ..., "target": ...}``, for results.json). A dataset's official
    split is used when it ships one (KonIQ-10k; train -> training, val -> the criteria and
    source validation, test -> the reported target metrics); otherwise the split is
    content-disjoint by ``groups`` (the reference image of synthetic datasets)."""
    if rank == 0:  # rank 0 generates and caches first; the others then read the cache
        src, tgt = open_images(cfg.source, cfg), open_images(cfg.target, cfg)
    distributed.barrier()
    if rank != 0:
        src, tgt = open_images(cfg.source, cfg), open_images(cfg.target, cfg)
    sv, tv, tt = cfg.source_val_fraction, cfg.target_val_fraction, cfg.target_test_fraction
    s, s_how = split_domain(src, {"train": 1 - sv, "val": sv}, cfg)
    t, t_how = split_domain(tgt, {"train": 1 - tv - tt, "val": tv, "test": tt}, cfg)
    return ({"src_train": s["train"], "src_val": s["val"], "tgt_train": t["train"],
             "tgt_val": t["val"], "tgt_test": t["test"]}, {"source": s_how, "target": t_how})


def split_domain(dataset, fractions: dict, cfg: Config) -> tuple:
    """``({part: subset}, how)`` for the parts named in ``fractions``: the dataset's official
    split when ``cfg.official_split`` is on and it has every part, content-disjoint; else
    ``split_by_group`` with ``fractions``. Both after the ``max_per_domain`` cap."""
    from ..data.splits import IQASubset, split_by_group

    keep = _sample(len(dataset), cfg.max_per_domain or len(dataset), cfg.data_seed)
    how = {"kind": "group", "seed": cfg.data_seed, "fractions": fractions}
    official = getattr(dataset, "official_split", None)
    if official is not None and cfg.official_split:
        parts = {k: np.intersect1d(official.get(k, []), keep).astype(np.int64) for k in fractions}
        problem = _official_problem(dataset, parts)
        if not problem:
            return ({k: IQASubset(dataset, rows.tolist(), name=f"{dataset.name}/{k}")
                     for k, rows in parts.items()}, {"kind": "official", "parts": list(parts)})
        how["official_split_unused"] = problem
        warnings.warn(f"{dataset.name}: official split not used ({problem}); splitting by "
                      f"content instead", RuntimeWarning, stacklevel=2)
    capped = dataset if len(keep) == len(dataset) else IQASubset(dataset, keep, name=dataset.name)
    return split_by_group(capped, fractions, cfg.data_seed), how


def _official_problem(dataset, parts: dict) -> str:
    """Why the official split ``parts`` (part -> rows) cannot be used; "" when it can."""
    missing = [k for k, rows in parts.items() if not len(rows)]
    if missing:
        return f"it has no {' or '.join(missing)} part"
    groups = [set(np.asarray(dataset.groups)[rows].tolist()) for rows in parts.values()]
    if sum(map(len, groups)) > len(set().union(*groups)):
        return "its parts share content (groups)"
    return ""


def _sample(n: int, cap: int, seed: int) -> list:
    """A fixed subset of at most ``cap`` indices, sorted (the ``max_per_domain`` cap, and the
    criteria's feature passes)."""
    if n <= cap:
        return list(range(n))
    return np.sort(np.random.default_rng(seed).permutation(n)[:cap]).tolist()


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s global RNGs (data order within its shard, dropout): rank
    0 keeps ``seed`` (a one-process run is unchanged), every other rank gets its own stream."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


# ----------------------------------------------------------------------------- the plan
def stage_at(stages, step: int) -> tuple:
    """``(stage, step within the stage)`` for a global step."""
    start = 0
    for stage in stages:
        if step < start + stage.steps:
            return stage, step - start
        start += stage.steps
    return stages[-1], stages[-1].steps


def stages_done(stages, step: int) -> list:
    """``[(name, steps), ...]`` of the stages completed by ``step`` (a fork needs them to be a
    prefix of its own plan)."""
    done, end = [], 0
    for stage in stages:
        end += stage.steps
        if end > step:
            break
        done.append((stage.name, stage.steps))
    return done


def stage_ends(stages) -> dict:
    """``{global step at which a stage ends: its name}``."""
    ends, total = {}, 0
    for stage in stages:
        total += stage.steps
        ends[total] = stage.name
    return ends


def lineage_step(cfg: Config, stage: Stage, t_in: int, step: int) -> int:
    """Steps in the history of the model trained at ``step``. In branch mode every search
    position restarts from the search's origin, so it counts from there; fine-tuning follows
    one position's budget. Schedules read this, so every method sees the same lr and lambda
    at the same point of its model's history."""
    if cfg.search_mode != "branch" or cfg.method != "freqalign":
        return step
    origin = cfg.warmup_steps + cfg.dann_warmup_steps
    if stage.window == "search":
        return origin + t_in % cfg.search_steps
    if stage.window == "selected":
        return origin + cfg.search_steps + t_in
    return step


def lr_factor(cfg: Config, step: int) -> float:
    """Of the peak lr, at lineage ``step``: a linear ramp over ``lr_warmup`` of the warm-up, a
    cosine down to ``adapt_lr_scale`` at its end, constant while adapting, and a cosine from
    there to 0 over fine-tuning (every method, so baselines see the same schedule)."""
    w, ramp = cfg.warmup_steps, max(int(cfg.lr_warmup * cfg.warmup_steps), 1)
    low = cfg.adapt_lr_scale
    if step < w:
        if step < ramp:
            return (step + 1) / ramp
        t = (step - ramp) / max(w - ramp, 1)
        return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * t))
    start = w + cfg.adapt_steps() - cfg.finetune_steps
    if step < start or cfg.finetune_steps == 0:
        return low
    return low * 0.5 * (1.0 + math.cos(math.pi * (step - start) / cfg.finetune_steps))


def _fresh_running() -> dict:
    """Loss sums since the last log record (the domain ones over adversarial steps only)."""
    return {"quality": 0.0, "domain": 0.0, "domain_acc": 0.0, "n": 0, "n_domain": 0}


def quality_loss(cfg: Config, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, y) if cfg.loss == "mse" else F.l1_loss(pred, y)


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
    seed = process_seed(cfg.seed, rank)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes")

    data, split_how = load_data(cfg, rank)
    model = build_model(cfg).to(device)
    feature_hw = check_grid(model, cfg)
    opt = torch.optim.AdamW([
        {"params": model.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale},
        {"params": model.regressor.parameters(), "lr": cfg.lr},
        {"params": model.discriminator.parameters(), "lr": cfg.lr * cfg.disc_lr_scale}],
        weight_decay=cfg.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)

    per_rank = cfg.batch_size // world
    gens = {"augment": torch.Generator().manual_seed(process_seed(cfg.seed * 1000 + 1, rank)),
            "jitter": torch.Generator().manual_seed(cfg.seed * 1000 + 2)}  # jitter: rank-shared
    streams = {"src": BatchStream(data["src_train"], per_rank, cfg.seed * 2, rank, world, cfg.workers),
               "tgt": BatchStream(data["tgt_train"], per_rank, cfg.seed * 2 + 1, rank, world,
                                  cfg.workers)}
    samples = {k: _sample(len(data[k]), cfg.criterion_max_samples, cfg.data_seed + i)
               for i, k in enumerate(SPLITS)}
    search = SearchState(cfg.positions(), cfg.window_size, cfg.grid)
    stages, total = cfg.stages(), cfg.total_steps()
    last_pos = cfg.grid ** 2 - cfg.window_size
    step, best_score, window_pos = 0, -math.inf, None
    running = _fresh_running()
    ckpt_dir = os.path.join(out, "checkpoints")
    origin_path = os.path.join(ckpt_dir, "search-origin.pt")
    selected_path = os.path.join(ckpt_dir, "search-best.pt")

    def snapshot() -> dict:
        """Everything a bit-exact continuation needs, with every process's RNG states (a
        collective: every rank calls it)."""
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "search": search.state_dict(), "best_score": best_score,
                "streams": {k: s.consumed for k, s in streams.items()},
                "rng": distributed.gather(checkpoint.rng_state(gens)), "config": cfg.to_dict(),
                "stages_done": stages_done(stages, step), "window": window_pos, "running": running,
                "feature_hw": feature_hw}

    def restore_training_state(ck: dict) -> None:
        """Weights, optimiser moments, batch-stream positions and this rank's RNGs from a
        snapshot."""
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        for k, s in streams.items():
            s.seek(ck["streams"][k])
        checkpoint.set_rng_state(checkpoint.rank_rng(ck["rng"], rank, world), gens)

    source = os.path.join(ckpt_dir, "last.pt") if resume else fork_from
    if source:
        ck = checkpoint.load(source)
        if fork_from and [tuple(s) for s in ck["stages_done"]] != \
                [(s.name, s.steps) for s in stages[:len(ck["stages_done"])]]:
            raise ConfigError(f"cannot fork {cfg.method} from {fork_from}: its completed stages "
                             f"{ck['stages_done']} are not a prefix of {stages}")
        restore_training_state(ck)
        step, window_pos = ck["step"], ck["window"]
        if resume:
            search.load_state_dict(ck["search"])
            best_score, running = ck["best_score"], ck["running"]

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

    def save_main(obj: dict, path: str) -> None:
        if main:
            checkpoint.save(obj, path)
        distributed.barrier()

    def own(path: str) -> str:
        """A state snapshot per process: each rank keeps its own RNG streams."""
        return path if rank == 0 else path.replace(".pt", f".rank{rank}.pt")

    def save_own(path: str) -> None:
        checkpoint.save(snapshot(), own(path))
        distributed.barrier()

    def evaluate_and_keep_best(stage: Stage) -> tuple:
        nonlocal best_score
        distributed.broadcast_buffers(model)
        scores, target_srcc = evaluate_criteria(model, data, samples, cfg, device)
        record("eval", {"stage": stage.name, **scores, "oracle_target_srcc": target_srcc})
        if scores[cfg.best_criterion] > best_score:
            best_score = scores[cfg.best_criterion]
            if main:
                checkpoint.save({"model": model.state_dict(), "config": cfg.to_dict(),
                                 "window": window_pos, "step": step, "criterion": cfg.best_criterion,
                                 "score": best_score}, os.path.join(ckpt_dir, "best.pt"))
        return scores, target_srcc

    ends = stage_ends(stages)
    bar = tqdm(total=total, initial=step, desc=cfg.method, disable=not (main and cfg.progress),
               dynamic_ncols=True, leave=False)
    model.train()
    while step < total:
        stage, t_in = stage_at(stages, step)

        # -- where the training state comes from, and where the discriminator pools
        if stage.window == "search":
            if cfg.search_mode == "branch" and t_in % cfg.search_steps == 0:
                if t_in == 0:
                    save_own(origin_path)
                else:  # the next position starts from the same state as the first
                    restore_training_state(checkpoint.load(own(origin_path)))
            window_pos = search.positions[t_in // cfg.search_steps]
        elif stage.window == "selected":
            if t_in == 0 and cfg.search_mode == "probe" and not search.entries:
                run_probe(model, data, samples, cfg, device, search, step)
            if t_in == 0 and cfg.finetune_from == "selected" and os.path.isfile(own(selected_path)):
                restore_training_state(checkpoint.load(own(selected_path)))
            window_pos = jitter(search.selected(), cfg.jitter, last_pos, gens["jitter"])
        else:
            window_pos = None  # GAP (the discriminator sits idle without a domain loss)
        model.set_window(window_pos, cfg.window_size)

        # -- schedules, by the step in the trained model's history
        lineage = lineage_step(cfg, stage, t_in, step)
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lr_factor(cfg, lineage)
        lam = dann_lambda((lineage - cfg.warmup_steps) / max(cfg.adapt_steps(), 1), cfg.alpha)

        # -- one step
        if stage.batches == "both":
            images_s, y = next(streams["src"])
            images_t, _ = next(streams["tgt"])  # target labels are never read here
            x = crop_batch(images_s + images_t, cfg.image_size, gens["augment"], cfg.hflip,
                           cfg.rot90).to(device)
            pred, logit, _ = net(x, lam)
            domain = torch.cat([torch.ones(len(images_s)), torch.zeros(len(images_t))]).to(device)
            quality = quality_loss(cfg, pred[:len(images_s)], y.to(device))
            dom = F.binary_cross_entropy_with_logits(logit, domain)
            dom_acc = float(((logit.detach() > 0).float() == domain).float().mean())
        else:  # supervised: source labels, or target labels for the oracle (the ceiling)
            images, y = next(streams["src" if stage.batches == "source" else "tgt"])
            x = crop_batch(images, cfg.image_size, gens["augment"], cfg.hflip, cfg.rot90).to(device)
            pred, _, _ = net(x, 0.0)
            quality, dom, dom_acc = quality_loss(cfg, pred, y.to(device)), None, math.nan
        loss = quality if dom is None else quality + cfg.domain_weight * dom
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        running["quality"] += float(quality.detach())
        if dom is not None:
            running["domain"] += float(dom.detach())
            running["domain_acc"] += dom_acc
            running["n_domain"] += 1
        running["n"] += 1

        # -- logging
        if step % cfg.log_every == 0 or step == total:
            n, nd = max(running["n"], 1), running["n_domain"]
            values = {"stage": stage.name, "quality": distributed.mean(running["quality"] / n),
                      "domain": distributed.mean(running["domain"] / nd) if nd else None,
                      "disc_acc": distributed.mean(running["domain_acc"] / nd) if nd else None,
                      "lr": opt.param_groups[1]["lr"], "lambda": lam,
                      "window": -1 if window_pos is None else window_pos}
            record("train", values)
            running = _fresh_running()
            if main:
                adversarial = "" if not nd else (f"domain {values['domain']:.4f} disc_acc "
                                                 f"{values['disc_acc']:.2f} ")
                bar.write(f"step {step:>5}/{total} {stage.name:<11} {cfg.loss} "
                          f"{values['quality']:.4f} {adversarial}lr {values['lr']:.2e} "
                          f"window {values['window']:>2} {time.time() - t0:6.1f}s")

        # -- frequency movement: score the position that just finished its budget
        if stage.window == "search" and (t_in + 1) % cfg.search_steps == 0:
            scores, target_srcc = evaluate_and_keep_best(stage)
            if search.record(window_pos, cfg.criterion, scores, target_srcc, step):
                save_own(selected_path)
            if main:
                bar.write(f"  window {window_pos:>2} {cfg.criterion} {scores[cfg.criterion]:+.4f} "
                          f"(oracle target SRCC {target_srcc:.3f}, analysis only)")
        elif step % cfg.eval_every == 0 or step == total:
            evaluate_and_keep_best(stage)

        # -- checkpoints
        if step % cfg.checkpoint_every == 0 or step in ends:
            save_main(snapshot(), os.path.join(ckpt_dir, "last.pt"))
            if keep_stage_checkpoints and step in ends:
                save_main(snapshot(), os.path.join(ckpt_dir, f"after-{ends[step]}.pt"))
    bar.close()

    # probe mode with no fine-tuning still reports its curve
    if cfg.method == "freqalign" and cfg.search_mode == "probe" and not search.entries:
        run_probe(model, data, samples, cfg, device, search, step)

    # -- final evaluation on all of target test and source val
    distributed.broadcast_buffers(model)
    everything = lambda k: list(range(len(data[k])))  # noqa: E731
    tgt = predict(model, data["tgt_test"], everything("tgt_test"), cfg, device)
    src = predict(model, data["src_val"], everything("src_val"), cfg, device)
    results = make_results(cfg, search, tgt, src, feature_hw, time.time() - t0, fork_from, data,
                           split_how)
    if main:
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(results, fh, indent=2)
        np.savez(os.path.join(out, "target_predictions.npz"), pred=tgt["pred"], true=tgt["true"])
        log.close()
        writer.close()
        write_report(out, results, tgt)
    distributed.barrier()
    return results


def plan(cfg: Config) -> list:
    """The stage plan as JSON: ``[[name, steps], ...]``."""
    return [[stage.name, stage.steps] for stage in cfg.stages()]


def make_results(cfg, search, tgt, src, feature_hw, seconds, fork_from, data, split_how) -> dict:
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
            "criterion": cfg.criterion if cfg.search_mode != "probe" else "probe",
            "search_mode": cfg.search_mode,
            "selection_uses_target_labels": cfg.method == "freqalign" and cfg.search_mode != "probe"
            and cfg.criterion == "oracle",
            "selected_window": selected, "target": target, "source_val": source,
            "search": search.entries, "feature_map": list(feature_hw),
            "sizes": {k: len(v) for k, v in data.items()}, "splits": split_how,
            "eval_crops": cfg.eval_crops, "steps": cfg.total_steps(),
            "budget": cfg.warmup_steps + cfg.adapt_steps(),
            "stages": plan(cfg), "seconds": round(seconds, 1),
            "forked_from": fork_from or None, "config": cfg.to_dict(),
            "note": "oracle_target_srcc in the search uses target labels: analysis only"}
