"""The training plan as a type: a method's stages, where each step's model is in its history
(the lineage step), the schedules read there, and the stage checkpoints that forks start from.

``Plan(cfg)`` is the one place that knows these; the loop, compare and study ask it. The plan
of every method (empty stages left out):
  warmup      source batches  no discriminator          (every method but target-oracle)
  dann-warmup both            GAP (plain DANN)          (freqalign, dann)
  search      both            positions p0, p0+s, ...   (freqalign; branch or move mode)
  finetune    both            the selected position, jittered  (freqalign)
  source-only / dann / target-oracle: the baselines' remaining budget, each stage named after
  its method (target-oracle: target labels throughout;
  source-only: both domains' batches pass through the network, so BatchNorm sees what it sees in
  the adversarial methods, but only the source loss trains).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Tuple

from ..basis import last_position
from ..errors import ConfigError
from ..method.model import dann_lambda
from ..run.files import stage_checkpoint
from ..run.renamed import renamed_stages
from ..run.vocabulary import Method, SearchMode


class Batches(Enum):
    """What a step trains on: source labels, target labels, or source labels plus unlabelled
    target images for the domain loss."""
    SOURCE_LABELS = "source-labels"
    TARGET_LABELS = "target-labels"
    BOTH = "both"


class Pooling(Enum):
    """Where the discriminator pools: nowhere (no domain loss), GAP, the position being
    searched, or the selected position, jittered."""
    NONE = "none"
    GAP = "gap"
    SEARCH = "search"
    SELECTED = "selected"


# stage names: written into checkpoints (``stages_done``), results and checkpoint file names;
# a baseline's own stage is named after its method (``source-only``, ``dann``, ``target-oracle``)
WARMUP, DANN_WARMUP, SEARCH, FINETUNE = "warmup", "dann-warmup", "search", "finetune"


@dataclass(frozen=True)
class Stage:
    """``steps`` optimizer steps that train on ``batches`` with the discriminator at ``pooling``."""
    name: str
    steps: int
    batches: Batches
    pooling: Pooling


class Plan:
    """The stages of ``cfg.method`` and the step arithmetic over them."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.method, self.mode = Method(cfg.method), SearchMode(cfg.search_mode)
        end = last_position(cfg.grid, cfg.window_size) if cfg.search_end == -1 else cfg.search_end
        self.positions: List[int] = list(range(cfg.search_start, end + 1, cfg.search_stride))
        self.stages: List[Stage] = self._stages()
        self.total = sum(stage.steps for stage in self.stages)
        self.budget = cfg.warmup_steps + self.adapt_steps

    # -- budgets ----------------------------------------------------------------------------
    @property
    def search_walk(self) -> int:
        """Steps of the search stage: every position adapts ``steps_per_position``."""
        if self.mode is SearchMode.PROBE:
            return 0
        return len(self.positions) * self.cfg.steps_per_position

    @property
    def adapt_steps(self) -> int:
        """Steps after warm-up in the final model's history; every method gets this many (the
        search counts one position's budget in branch mode, the whole walk in move mode)."""
        c = self.cfg
        search = c.steps_per_position if self.mode is SearchMode.BRANCH else self.search_walk
        return c.dann_warmup_steps + search + c.finetune_steps

    @property
    def probes(self) -> bool:
        """FreqAlign in probe mode: positions are scored on frozen features, not trained."""
        return self.method is Method.FREQALIGN and self.mode is SearchMode.PROBE

    def _stages(self) -> List[Stage]:
        w, b, t = self.cfg.warmup_steps, self.cfg.dann_warmup_steps, self.adapt_steps
        if self.method is Method.TARGET_ORACLE:  # the ceiling: target labels for the whole budget
            return [Stage(self.method.value, w + t, Batches.TARGET_LABELS, Pooling.NONE)]
        plan = [Stage(WARMUP, w, Batches.SOURCE_LABELS, Pooling.NONE)]
        if self.method is Method.SOURCE_ONLY:  # target images pass too (BatchNorm), no loss
            plan.append(Stage(self.method.value, t, Batches.BOTH, Pooling.NONE))
        elif self.method is Method.DANN:
            plan += [Stage(DANN_WARMUP, b, Batches.BOTH, Pooling.GAP),
                     Stage(self.method.value, t - b, Batches.BOTH, Pooling.GAP)]
        else:
            plan += [Stage(DANN_WARMUP, b, Batches.BOTH, Pooling.GAP),
                     Stage(SEARCH, self.search_walk, Batches.BOTH, Pooling.SEARCH),
                     Stage(FINETUNE, self.cfg.finetune_steps, Batches.BOTH, Pooling.SELECTED)]
        return [stage for stage in plan if stage.steps > 0]

    # -- where a step is --------------------------------------------------------------------
    def stage_at(self, step: int) -> Tuple[Stage, int]:
        """``(stage, step within the stage)`` for a global step."""
        start = 0
        for stage in self.stages:
            if step < start + stage.steps:
                return stage, step - start
            start += stage.steps
        return self.stages[-1], self.stages[-1].steps

    def stages_done(self, step: int) -> List[Tuple[str, int]]:
        """``[(name, steps), ...]`` of the stages completed by ``step`` (a fork checks them)."""
        done, end = [], 0
        for stage in self.stages:
            end += stage.steps
            if end > step:
                break
            done.append((stage.name, stage.steps))
        return done

    def stage_ending_at(self, step: int) -> Optional[str]:
        """The name of the stage whose last step is ``step - 1`` (None: no stage ends there)."""
        end = 0
        for stage in self.stages:
            end += stage.steps
            if end == step:
                return stage.name
        return None

    def position_index(self, t_in: int) -> int:
        """The search position (its index) that step ``t_in`` of the search stage adapts."""
        return t_in // self.cfg.steps_per_position

    def starts_position(self, stage: Stage, t_in: int) -> bool:
        """Step ``t_in`` of ``stage`` is a search position's first."""
        return stage.pooling is Pooling.SEARCH and t_in % self.cfg.steps_per_position == 0

    def ends_position(self, stage: Stage, t_in: int) -> bool:
        """Step ``t_in`` of ``stage`` is a search position's last: time to score it."""
        return stage.pooling is Pooling.SEARCH and (t_in + 1) % self.cfg.steps_per_position == 0

    # -- schedules --------------------------------------------------------------------------
    def lineage_step(self, step: int) -> int:
        """Steps in the history of the model trained at ``step``. In branch mode every search
        position restarts from the search's origin, so it counts from there; fine-tuning follows
        one position's budget. Schedules read this, so every method sees the same lr and lambda
        at the same point of its model's history."""
        if self.mode is not SearchMode.BRANCH or self.method is not Method.FREQALIGN:
            return step
        stage, t_in = self.stage_at(step)
        origin, per = self.cfg.warmup_steps + self.cfg.dann_warmup_steps, self.cfg.steps_per_position
        if stage.pooling is Pooling.SEARCH:
            return origin + t_in % per
        if stage.pooling is Pooling.SELECTED:
            return origin + per + t_in
        return step

    def lr_factor(self, lineage: int) -> float:
        """Of the peak lr, at lineage step ``lineage``: a linear ramp over ``lr_warmup`` of the
        warm-up, a cosine down to ``adapt_lr_scale`` at its end, constant while adapting, and a
        cosine from there to 0 over fine-tuning (every method, so baselines see the same)."""
        c = self.cfg
        w, ramp, low = c.warmup_steps, max(int(c.lr_warmup * c.warmup_steps), 1), c.adapt_lr_scale
        if lineage < w:
            if lineage < ramp:
                return (lineage + 1) / ramp
            t = (lineage - ramp) / max(w - ramp, 1)
            return low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * t))
        start = w + self.adapt_steps - c.finetune_steps
        if lineage < start or c.finetune_steps == 0:
            return low
        return low * 0.5 * (1.0 + math.cos(math.pi * (lineage - start) / c.finetune_steps))

    def dann_lambda(self, lineage: int) -> float:
        """The gradient-reversal weight at lineage step ``lineage``: 0 for the first
        ``disc_warmup_steps`` of adaptation (the discriminator learns alone), then DANN's
        schedule over the remaining adaptation steps."""
        start = self.cfg.warmup_steps + self.cfg.disc_warmup_steps
        progress = (lineage - start) / max(self.adapt_steps - self.cfg.disc_warmup_steps, 1)
        return dann_lambda(progress, self.cfg.alpha)

    # -- forks ------------------------------------------------------------------------------
    def as_list(self) -> list:
        """The stages as JSON: ``[[name, steps], ...]``."""
        return [[stage.name, stage.steps] for stage in self.stages]

    def check_fork(self, stages_done: list, path: str) -> None:
        """A fork from checkpoint ``path`` needs its completed stages to be a prefix of ours."""
        done = [tuple(s) for s in renamed_stages(stages_done, path)]
        if done != [(s.name, s.steps) for s in self.stages[:len(done)]]:
            raise ConfigError(f"cannot fork {self.method.value} from {path}: its completed "
                              f"stages {stages_done} are not a prefix of {self.as_list()}")

    def fork_point(self, donor: "Plan") -> Optional[str]:
        """The last stage this plan shares with ``donor``'s from the start (None: none), so
        that this run can start from the donor's checkpoint at that stage's end."""
        shared = None
        for mine, theirs in zip(self.stages, donor.stages):
            if (mine.name, mine.steps) != (theirs.name, theirs.steps):
                break
            shared = mine.name
        return shared

    def fork_from(self, donor: "Plan", donor_dir: str) -> str:
        """The checkpoint of ``donor``'s run in ``donor_dir`` this run forks from ("": none)."""
        stage = self.fork_point(donor)
        return stage_checkpoint(donor_dir, stage) if stage else ""


__all__ = ["Method", "SearchMode", "Batches", "Pooling", "Stage", "Plan", "stage_checkpoint",
           "WARMUP", "DANN_WARMUP", "SEARCH", "FINETUNE"]
