"""``torchrun ... tests/nan_run.py RANK STEPS ARGS...``: the freqalign CLI, in which process
``RANK`` trains on an all-NaN batch at each optimizer step in ``STEPS`` (1-based, comma
separated), as one process with a broken shard would. The DDP non-finite test uses it."""
import os
import sys

import torch

from freqalign.cli import main
from freqalign.train import loop


def nan_batches(rank: int, steps: set) -> None:
    """Patch the trainer's ``next_batch`` to return NaN crops in process ``rank`` at ``steps``."""
    real, calls = loop.next_batch, [0]

    def poisoned(*args, **kwargs):
        x, y, n_labelled = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] in steps and int(os.environ.get("RANK", "0")) == rank:
            x = torch.full_like(x, float("nan"))
        return x, y, n_labelled

    loop.next_batch = poisoned


if __name__ == "__main__":
    nan_batches(int(sys.argv[1]), {int(s) for s in sys.argv[2].split(",")})
    sys.exit(main(sys.argv[3:]))
