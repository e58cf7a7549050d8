"""A run's log: ``metrics.jsonl`` (one JSON record per line: ``step``, ``kind`` = train | eval,
and its values) and TensorBoard scalars, written by process 0; ``read_records`` reads it back."""
from __future__ import annotations

import json
import math
import os
from typing import List, Optional

from ..run.config import save_yaml
from ..run.files import config_file, log_file
from ..run.renamed import renamed_keys


class MetricsLog:
    """The log of the run in ``out``, from ``step`` on (a resume drops the records after its
    checkpoint). Only process 0 writes (``enabled``); elsewhere every call does nothing."""

    def __init__(self, out: str, cfg, step: int, resume: bool, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
        save_yaml(cfg, config_file(out))
        path = log_file(out)
        kept = []
        if resume and os.path.exists(path):
            with open(path) as fh:
                kept = [line for line in fh if json.loads(line)["step"] <= step]
        self.file = open(path, "w")
        self.file.writelines(kept)
        self.file.flush()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(os.path.join(out, "tb"), purge_step=step if step else None)

    def record(self, step: int, kind: str, values: dict) -> None:
        """One record; its finite numbers also go to TensorBoard as ``kind/name``."""
        if not self.enabled:
            return
        self.file.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
        self.file.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                self.writer.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


def read_records(run_dir: str, kind: Optional[str] = None) -> List[dict]:
    """The records of the run in ``run_dir`` (of ``kind`` only, when given), in order; [] when
    it has no log."""
    path = log_file(run_dir)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        records = [renamed_keys(json.loads(line), path) for line in fh if line.strip()]
    return [r for r in records if kind is None or r["kind"] == kind]


__all__ = ["MetricsLog", "read_records"]
