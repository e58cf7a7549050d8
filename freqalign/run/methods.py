"""The methods a run can train (``Method``) and the ways its search can visit positions
(``SearchMode``): the values of the config's ``method`` and ``search_mode``."""
from __future__ import annotations

from enum import Enum


class Method(str, Enum):
    FREQALIGN = "freqalign"
    DANN = "dann"
    SOURCE_ONLY = "source-only"
    TARGET_ORACLE = "target-oracle"


class SearchMode(str, Enum):
    """How frequency movement visits its positions: every position adapts from the same state
    (``branch``), each continues from the previous one (``move``), or all are scored at once on
    frozen features (``probe``)."""
    BRANCH = "branch"
    MOVE = "move"
    PROBE = "probe"


__all__ = ["Method", "SearchMode"]
