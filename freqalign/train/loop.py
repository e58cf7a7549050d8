"""The trainer: warm-up, frequency movement and perturbation fine-tuning (docs/design.md
section 4.3) in one loop that reads top to bottom. The baselines run the same loop with other
plans (``plan.Plan``: what each stage trains on and where the discriminator pools).

``train(cfg, out)`` runs a method into a run folder and returns its results dict, holding the
folder's lock (``runlock``): a signal stops it after a step, saved (``preempt``); a non-finite
loss stops it or is skipped (``on_nonfinite``); under DDP a lost process is named. In
``branch`` mode every search position starts from the state saved when the search began
(``checkpoints/search-origin.pt``: weights, optimiser moments, batch streams and RNGs), so
positions differ only by their window; the best position's state is kept in
``checkpoints/search-best.pt``, and fine-tuning continues from it.
"""
from __future__ import annotations

import os
import time
from typing import Optional

from tqdm.auto import tqdm

from ..basis import last_position
from ..data.domains import load_data
from ..errors import FreqAlignError, TrainingError
from ..method import stem_cache
from ..method.search import jitter
from ..run import checkpoint
from ..run.files import CheckpointFiles, stage_checkpoint
from ..run.vocabulary import FinetuneFrom, OnNonfinite, SearchMode
from . import distributed, preempt
from .evaluate import Evaluator, make_results, write_results
from .preempt import Interrupted, StopRequests
from .plan import Plan, Pooling, Stage
from .runlock import RunLock
from .runlog import MetricsLog
from .state import LossSums, RunSetup, RunState, continue_from, new_state, restore, save_snapshot
from .step import Learner, make_learner, next_batch, take_step


def train(cfg, out: str, resume: bool = False, fork_from: str = "",
          keep_stage_checkpoints: bool = False) -> dict:
    """Run ``cfg.method`` into folder ``out`` (resuming from ``out/checkpoints/last.pt`` with
    ``resume``; starting from another run's stage checkpoint with ``fork_from``; keeping a
    checkpoint at the end of every stage, for forks, with ``keep_stage_checkpoints``)."""
    t0 = time.time()
    rank, world, device = distributed.start(cfg)
    run = RunSetup(cfg, Plan(cfg), CheckpointFiles(out, rank), rank, world, device)
    with RunLock(out, run.main), StopRequests() as stop:  # one run per folder; signals noted
        try:
            return run_in_folder(run, stop, t0, resume, fork_from, keep_stage_checkpoints)
        except RuntimeError as exc:  # a collective that failed: a lost process?
            if world > 1 and not isinstance(exc, FreqAlignError):
                raise_if_lost(run, exc)
            raise


def raise_if_lost(run: RunSetup, exc: RuntimeError) -> None:
    """A ``TrainingError`` naming the processes that no longer answer (none: ``exc`` is not
    about a lost process, and this returns)."""
    lost = distributed.lost_processes(run.rank, run.world)
    if lost == []:
        return
    who = "process 0 (with the rendezvous store)" if lost is None else \
        f"process {', '.join(map(str, lost))} of {run.world}"
    raise TrainingError(f"lost {who}: it died or its machine stopped answering; stopping too "
                        f"(resume from {run.files.last} with freqalign train --resume "
                        f"{run.files.out})") from exc


def run_in_folder(run: RunSetup, stop: StopRequests, t0: float, resume: bool, fork_from: str,
                  keep_stage_checkpoints: bool) -> dict:
    """``train``, once its process is set up, holds the run folder's lock and notes signals."""
    cfg, out, device, world = run.cfg, run.files.out, run.device, run.world
    plan, files = run.plan, run.files
    data, split_how = load_data_once(run)
    learner = make_learner(cfg, device, world)
    model = learner.model
    state = new_state(run, data)
    start = files.last if resume else fork_from
    if start:
        ck = checkpoint.load(start)
        if fork_from:
            plan.check_fork(ck["stages_done"], fork_from)
        continue_from(run, state, learner, ck, resume)
    log = MetricsLog(out, cfg, state.step, resume, enabled=run.main)
    evaluator = Evaluator(data, cfg, device)
    progress = Progress(run, state.step, t0)

    model.train()
    while state.step < plan.total:
        stage, t_in = plan.stage_at(state.step)
        stop_if_asked(run, state, learner, stop)

        # -- where the training state comes from, and where the discriminator pools
        state.window = place_window(run, state, learner, evaluator, stage, t_in)
        model.set_window(state.window, cfg.window_size)

        # -- schedules, by the step in the trained model's history
        lineage = plan.lineage_step(state.step)
        learner.set_lr(plan.lr_factor(lineage))
        lam = plan.dann_lambda(lineage)

        # -- one step
        x, y, n_labelled = next_batch(stage.batches, state.streams, state.generators["augment"],
                                      cfg, device, model.from_stem)
        step_losses, bad = take_step(learner, x, y, n_labelled, stage.pooling is not Pooling.NONE,
                                     cfg, lam)
        state.step += 1
        progress.update()
        if bad:
            skip_nonfinite(run, state, progress, stage, bad)
        else:
            state.in_a_row = 0
            state.loss_sums.add(step_losses)

        # -- logging
        if state.step % cfg.log_every == 0 or state.step == plan.total:
            log_training(run, state, learner, log, progress, stage, lam)

        # -- frequency movement: score the position that just finished its budget
        if plan.ends_position(stage, t_in):
            scores, target_srcc = evaluator.log_criteria(model, state, stage.name, log, files.best)
            if state.search.record(state.window, cfg.criterion, scores, target_srcc, state.step):
                save_snapshot(run, state, learner, files.search_best, every_process=True)
            progress.write(f"  window {state.window:>2} {cfg.criterion} "
                           f"{scores[cfg.criterion]:+.4f} (target test SRCC {target_srcc:.3f}, "
                           f"analysis only)")
        elif state.step % cfg.eval_every == 0 or state.step == plan.total:
            evaluator.log_criteria(model, state, stage.name, log, files.best)

        # -- checkpoints: last.pt, and where forks start
        ended = plan.stage_ending_at(state.step)
        if state.step % cfg.checkpoint_every == 0 or ended:
            kept = [stage_checkpoint(out, ended)] if ended and keep_stage_checkpoints else []
            save_snapshot(run, state, learner, files.last, *kept)
            state.saved = state.step
    stop_if_asked(run, state, learner, stop)
    progress.close()

    if plan.probes and not state.search.entries:  # no fine-tuning: the probe still reports
        evaluator.probe(model, state.search, state.step)

    # -- final evaluation on all of target test and source val
    tgt, src = evaluator.final(model)
    results = make_results(cfg, plan, state.search, tgt, src, {
        "feature_map": learner.feature_hw, "sizes": {k: len(v) for k, v in data.items()},
        "splits": split_how, "seconds": time.time() - t0, "forked_from": fork_from,
        "nonfinite_skipped": state.skipped,
        "alignment": evaluator.alignment(model, plan.positions)})
    if run.main:
        write_results(out, results, tgt)
    log.close()
    distributed.barrier()
    return results


def load_data_once(run: RunSetup) -> tuple:
    """``freqalign.data.domains.load_data``: process 0 generates and caches the data (and the
    stem cache, ``method.stem_cache``) first, the others then read its caches."""
    wrap = stem_cache.wrapper(run.cfg, run.device, progress=run.main and run.cfg.progress)
    if run.main:
        loaded = load_data(run.cfg, wrap)
    distributed.barrier()
    return loaded if run.main else load_data(run.cfg, wrap)


def place_window(run: RunSetup, state: RunState, learner: Learner, evaluator: Evaluator,
                 stage: Stage, t_in: int) -> Optional[int]:
    """Where step ``t_in`` of ``stage`` starts from and where the discriminator pools: a search
    position at its place (in branch mode every position starts from the search's origin), the
    selected position jittered (fine-tuning starts from its saved state), else GAP (None; the
    discriminator sits idle without a domain loss)."""
    cfg, plan, files = run.cfg, run.plan, run.files
    if stage.pooling is Pooling.SEARCH:
        if plan.mode is SearchMode.BRANCH and plan.starts_position(stage, t_in):
            if t_in == 0:
                save_snapshot(run, state, learner, files.search_origin, every_process=True)
            else:  # the next position starts from the same state as the first
                restore(run, state, learner, checkpoint.load(files.search_origin))
        return state.search.positions[plan.position_index(t_in)]
    if stage.pooling is Pooling.SELECTED:
        if t_in == 0 and plan.mode is SearchMode.PROBE and not state.search.entries:
            evaluator.probe(learner.model, state.search, state.step)
        if t_in == 0 and cfg.finetune_from == FinetuneFrom.SELECTED and \
                os.path.isfile(files.search_best):
            restore(run, state, learner, checkpoint.load(files.search_best))
        last = last_position(cfg.grid, cfg.window_size)
        return jitter(state.search.selected(), cfg.jitter, last, state.generators["jitter"])
    return None


def stop_if_asked(run: RunSetup, state: RunState, learner: Learner, stop: StopRequests) -> None:
    """When a signal asked the run to stop (in any process): save ``last.pt`` (unless it holds
    this step already) and raise ``Interrupted``, saying what was saved and how to resume."""
    signum = stop.asked()
    if not signum:
        return
    if state.saved != state.step:
        save_snapshot(run, state, learner, run.files.last)
        state.saved = state.step
    stage, _ = run.plan.stage_at(max(state.step - 1, 0))
    raise Interrupted(signum, f"stopped by {preempt.name(signum)} after step {state.step}/"
                      f"{run.plan.total} ({stage.name}): saved {run.files.last}; continue with "
                      f"freqalign train --resume {run.files.out}")


def skip_nonfinite(run: RunSetup, state: RunState, progress: "Progress", stage: Stage,
                   bad: str) -> None:
    """After a step that was not taken for a non-finite ``bad`` value: count it and go on
    (``on_nonfinite=skip``), or stop with a ``TrainingError`` naming the step, the stage and the
    value, and the checkpoint kept (``stop``, or ``max_nonfinite`` such steps in a row)."""
    cfg, files = run.cfg, run.files
    state.skipped += 1
    state.in_a_row += 1
    where = f"step {state.step}/{run.plan.total} ({stage.name}): non-finite {bad}"
    if cfg.on_nonfinite == OnNonfinite.SKIP and state.in_a_row < cfg.max_nonfinite:
        progress.write(f"{where}: step skipped ({state.skipped} so far)")
        return
    why = "" if cfg.on_nonfinite == OnNonfinite.STOP else \
        f", {state.in_a_row} steps in a row (max_nonfinite={cfg.max_nonfinite})"
    kept = f"{files.last} kept (step {state.saved})" if state.saved is not None else \
        "no checkpoint written yet"
    hint = "; on_nonfinite=skip drops such steps" if cfg.on_nonfinite == OnNonfinite.STOP else ""
    raise TrainingError(f"{where}{why}; stopped, {kept}{hint}")


def log_training(run: RunSetup, state: RunState, learner: Learner, log: MetricsLog,
                 progress: "Progress", stage: Stage, lam: float) -> None:
    """A ``train`` record of the losses since the last one (averaged over processes), and its
    line under the progress bar; the sums start again."""
    r, cfg = state.loss_sums, run.cfg
    n, nd = max(r.n, 1), r.n_domain
    values = {"stage": stage.name, "quality": distributed.mean(r.quality / n),
              "domain": distributed.mean(r.domain / nd) if nd else None,
              "disc_acc": distributed.mean(r.domain_acc / nd) if nd else None,
              "lr": learner.opt.param_groups[1]["lr"], "lambda": lam,
              "window": -1 if state.window is None else state.window}
    log.record(state.step, "train", values)
    state.loss_sums = LossSums()
    adversarial = "" if not nd else (f"domain {values['domain']:.4f} disc_acc "
                                     f"{values['disc_acc']:.2f} ")
    progress.write(f"step {state.step:>5}/{run.plan.total} {stage.name:<11} {cfg.loss} "
                   f"{values['quality']:.4f} {adversarial}lr {values['lr']:.2e} "
                   f"window {values['window']:>2} {progress.seconds():6.1f}s")


class Progress:
    """Process 0's progress bar and the lines written under it (other processes stay quiet)."""

    def __init__(self, run: RunSetup, step: int, t0: float):
        self.enabled, self.t0 = run.main, t0
        self.bar = tqdm(total=run.plan.total, initial=step, desc=run.cfg.method,
                        disable=not (run.main and run.cfg.progress), dynamic_ncols=True,
                        leave=False)

    def update(self) -> None:
        self.bar.update(1)

    def write(self, line: str) -> None:
        if self.enabled:
            self.bar.write(line)

    def seconds(self) -> float:
        return time.time() - self.t0

    def close(self) -> None:
        self.bar.close()


__all__ = ["train"]
