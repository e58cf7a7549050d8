"""The files of a run folder: ``config.yaml`` (its config), ``metrics.jsonl`` (its log),
``results.json`` (its final results), ``run.lock`` (the process that owns it) and the
checkpoints under ``checkpoints/`` (``CheckpointFiles``: last, best, the search's snapshots, and
``stage_checkpoint``: the state at a stage's end, where forks start)."""
from __future__ import annotations

import os
from dataclasses import dataclass


def config_file(run_dir: str) -> str:
    return os.path.join(run_dir, "config.yaml")


def log_file(run_dir: str) -> str:
    return os.path.join(run_dir, "metrics.jsonl")


def results_file(run_dir: str) -> str:
    return os.path.join(run_dir, "results.json")


def lock_file(run_dir: str) -> str:
    return os.path.join(run_dir, "run.lock")


def run_file(run_dir: str, name: str) -> str:
    """Checkpoint file ``name`` of the run in folder ``run_dir``."""
    return os.path.join(run_dir, "checkpoints", name)


@dataclass(frozen=True)
class CheckpointFiles:
    """The checkpoints of the run in ``out`` as process ``rank`` sees them: ``last`` (resume),
    ``best`` (by a label-free criterion), and the search's own per-process snapshots (every
    rank keeps its own RNG streams): ``search_origin`` (where branch positions start) and
    ``search_best`` (the best position's state, where fine-tuning starts)."""
    out: str
    rank: int = 0

    @property
    def folder(self) -> str:
        return os.path.dirname(self.last)

    @property
    def last(self) -> str:
        return run_file(self.out, "last.pt")

    @property
    def best(self) -> str:
        return run_file(self.out, "best.pt")

    @property
    def search_origin(self) -> str:
        return self._own("search-origin")

    @property
    def search_best(self) -> str:
        return self._own("search-best")

    def _own(self, name: str) -> str:
        return run_file(self.out, f"{name}.pt" if self.rank == 0 else f"{name}.rank{self.rank}.pt")


def stage_checkpoint(run_dir: str, stage: str) -> str:
    """The state a run kept at the end of ``stage`` (``keep_stage_checkpoints``): a fork's start."""
    return run_file(run_dir, f"after-{stage}.pt")


__all__ = ["config_file", "log_file", "results_file", "lock_file", "run_file", "CheckpointFiles",
           "stage_checkpoint"]
