"""``python tests/killed_run.py N ARGS...``: the freqalign CLI, hard-killed (exit status 17,
no cleanup) right after the trainer's optimizer step N, as a job killed mid-run would be.
The resume tests use it; the kill lives here, so the package carries no test hook."""
import os
import sys

import torch

from freqalign.cli import main

KILLED = 17


def kill_after(steps: int) -> None:
    """Patch ``AdamW.step`` (the trainer's optimiser) to exit after ``steps`` calls."""
    step, done = torch.optim.AdamW.step, [0]

    def counted(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        done[0] += 1
        if done[0] == steps:
            os._exit(KILLED)
        return out

    torch.optim.AdamW.step = counted


if __name__ == "__main__":
    kill_after(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
