"""Names renamed in what runs write (issue 25). Files of earlier runs still read: an old name
is read as its new one, with a one-line deprecation warning (config keys: ``config.RENAMED``)."""
from __future__ import annotations

import warnings

# results.json search entries, metrics.jsonl eval records, checkpoints' search entries
FIELDS = {"oracle_target_srcc": "target_test_srcc"}
# results.json ``stages``, checkpoints' ``stages_done``: a baseline's stage is its method's name
STAGES = {"source": "source-only", "oracle": "target-oracle"}
# checkpoint keys
CHECKPOINT_KEYS = {"running": "loss_sums"}


def _warn(what: str, old: str, new: str, where: str) -> None:
    warnings.warn(f"{where}: {what} {old!r} is deprecated, read as {new!r}", FutureWarning,
                  stacklevel=3)


def renamed_keys(record: dict, where: str, names: dict = FIELDS) -> dict:
    """``record`` with its keys that ``names`` renames under their new names."""
    old = [k for k in record if k in names]
    for key in old:
        _warn("key", key, names[key], where)
    return {names.get(k, k): v for k, v in record.items()} if old else record


def renamed_stages(stages: list, where: str) -> list:
    """``[[name, steps], ...]`` with the stage names that ``STAGES`` renames under their new
    names."""
    out = []
    for name, steps in stages:
        if name in STAGES:
            _warn("stage", name, STAGES[name], where)
        out.append([STAGES.get(name, name), steps])
    return out


__all__ = ["FIELDS", "STAGES", "CHECKPOINT_KEYS", "renamed_keys", "renamed_stages"]
