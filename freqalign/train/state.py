"""A run in two records: ``RunSetup``, what it is (config, plan, files, process; fixed), and
``RunState``, where it is (the step, the discriminator's window position, the loss sums,
the search so far, the best criterion score, the RNG streams and the batch streams).
``snapshot`` (with the ``Learner``'s model and optimiser) is a checkpoint; ``restore`` and
``continue_from`` put one back.

Under DDP each process has its own random streams (``distributed.process_seed``: its global
RNGs, so its dropout, and its crop generator; the jitter generator is shared, so all ranks
pool at the same window) and every checkpoint holds every process's RNG states, so a resume or
a branch restart gives each rank back its own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

import torch

from ..method.search import SearchState
from ..run import checkpoint
from ..run.files import CheckpointFiles
from ..run.renamed import CHECKPOINT_KEYS, renamed_keys
from . import distributed
from .batches import BatchStream
from .plan import Plan
from .step import Learner


@dataclass(frozen=True)
class RunSetup:
    """What a run is, fixed from start to end: its config and plan, its files, and this
    process's rank among ``world`` processes and its device."""
    cfg: Any
    plan: Plan
    files: CheckpointFiles
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """This is process 0, the one that writes the run's files."""
        return self.rank == 0


@dataclass
class LossSums:
    """Loss sums since the last log record (the domain ones over adversarial steps only)."""
    quality: float = 0.0
    domain: float = 0.0
    domain_acc: float = 0.0
    n: int = 0
    n_domain: int = 0

    def add(self, losses) -> None:
        """Add a step's ``step.Losses``."""
        self.quality += float(losses.quality.detach())
        if losses.domain is not None:
            self.domain += float(losses.domain.detach())
            self.domain_acc += float(losses.domain_acc)
            self.n_domain += 1
        self.n += 1


@dataclass
class RunState:
    """Everything of a run that changes as it goes, but the model and optimiser."""
    search: SearchState
    generators: Dict[str, torch.Generator]  # augment (per process), jitter (shared)
    streams: Dict[str, BatchStream]          # src, tgt: their position is their state
    step: int = 0
    window: Optional[int] = None             # the discriminator's position (None: GAP)
    best_score: float = -math.inf            # of cfg.best_criterion, for checkpoints/best.pt
    loss_sums: LossSums = field(default_factory=LossSums)
    skipped: int = 0                         # steps dropped for a non-finite value (on_nonfinite=skip)
    in_a_row: int = 0                        # of them, the last ones in a row
    saved: Optional[int] = None              # the step of checkpoints/last.pt (None: none yet)


def new_state(run: RunSetup, data: dict) -> RunState:
    """A run's state at step 0: fresh RNG streams and batch streams over the training splits."""
    cfg, rank, world = run.cfg, run.rank, run.world
    per_rank, seed = cfg.batch_size // world, cfg.seed
    generators = {
        "augment": torch.Generator().manual_seed(distributed.process_seed(seed * 1000 + 1, rank)),
        "jitter": torch.Generator().manual_seed(seed * 1000 + 2)}
    streams = {
        "src": BatchStream(data["src_train"], per_rank, seed * 2, rank, world, cfg.workers),
        "tgt": BatchStream(data["tgt_train"], per_rank, seed * 2 + 1, rank, world, cfg.workers)}
    search = SearchState(run.plan.positions, cfg.window_size, cfg.grid)
    return RunState(search, generators, streams)


def snapshot(run: RunSetup, state: RunState, learner: Learner) -> dict:
    """Everything a bit-exact continuation needs, with every process's RNG states (a
    collective: every rank calls it)."""
    return {"model": learner.model.state_dict(), "optimizer": learner.opt.state_dict(),
            "step": state.step, "search": state.search.state_dict(),
            "best_score": state.best_score,
            "streams": {k: s.consumed for k, s in state.streams.items()},
            "rng": distributed.gather(checkpoint.rng_state(state.generators)),
            "config": run.cfg.to_dict(), "stages_done": run.plan.stages_done(state.step),
            "window": state.window, "loss_sums": asdict(state.loss_sums),
            "nonfinite": [state.skipped, state.in_a_row], "feature_hw": learner.feature_hw}


def save_snapshot(run: RunSetup, state: RunState, learner: Learner, *paths: str,
                  every_process: bool = False) -> None:
    """Write a snapshot to ``paths`` (by process 0, or with ``every_process`` by every process
    to its own files), then wait for all processes."""
    snap = snapshot(run, state, learner)
    if every_process or run.main:
        for path in paths:
            checkpoint.save(snap, path)
    distributed.barrier()


def restore(run: RunSetup, state: RunState, learner: Learner, ck: dict) -> None:
    """Weights, optimiser moments, batch-stream positions and this process's RNGs from
    snapshot ``ck`` (a branch restart: the step, search and logs go on)."""
    learner.model.load_state_dict(ck["model"])
    learner.opt.load_state_dict(ck["optimizer"])
    for k, s in state.streams.items():
        s.seek(ck["streams"][k])
    checkpoint.set_rng_state(checkpoint.rank_rng(ck["rng"], run.rank, run.world),
                             state.generators)


def continue_from(run: RunSetup, state: RunState, learner: Learner, ck: dict, resume: bool) -> None:
    """Continue a run from snapshot ``ck``: a fork takes the training state and the step; a
    resume also the search, the best score and the loss sums."""
    restore(run, state, learner, ck)
    state.step, state.window = ck["step"], ck["window"]
    if resume:
        where = "checkpoint"
        ck = renamed_keys(ck, where, CHECKPOINT_KEYS)
        entries = [renamed_keys(e, where) for e in ck["search"]["entries"]]
        search = {**ck["search"], "entries": entries}
        state.search.load_state_dict(search)
        state.best_score, state.loss_sums = ck["best_score"], LossSums(**ck["loss_sums"])
        state.skipped, state.in_a_row = ck.get("nonfinite", (0, 0))  # none in older checkpoints
        state.saved = ck["step"]


__all__ = ["RunSetup", "LossSums", "RunState", "new_state", "snapshot", "save_snapshot", "restore",
           "continue_from"]
