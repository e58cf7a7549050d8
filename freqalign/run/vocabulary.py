"""The named values of a run's config: the methods it can train (``Method``), the ways its
search visits positions (``SearchMode``), its quality loss (``Loss``), what it does on a
non-finite step (``OnNonfinite``) and where fine-tuning starts (``FinetuneFrom``). The
criteria are the method's (``method.criteria.Criterion``)."""
from __future__ import annotations

from ..names import Name


class Method(Name):
    FREQALIGN = "freqalign"
    DANN = "dann"
    SOURCE_ONLY = "source-only"
    TARGET_ORACLE = "target-oracle"  # the ceiling: trains on target labels ("oracle" alone
    #                                  names the criterion)


class SearchMode(Name):
    """How frequency movement visits its positions: every position adapts from the same state
    (``branch``), each continues from the previous one (``move``), or all are scored at once on
    frozen features (``probe``)."""
    BRANCH = "branch"
    MOVE = "move"
    PROBE = "probe"


class Loss(Name):
    """The quality loss on [0, 1] scores."""
    L1 = "l1"
    MSE = "mse"


class OnNonfinite(Name):
    """A non-finite loss or gradient norm stops the run, or its step is dropped."""
    STOP = "stop"
    SKIP = "skip"


class FinetuneFrom(Name):
    """Fine-tuning starts from the selected position's model, or from the last one."""
    SELECTED = "selected"
    LAST = "last"


__all__ = ["Method", "SearchMode", "Loss", "OnNonfinite", "FinetuneFrom"]
