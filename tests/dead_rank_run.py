"""``torchrun ... tests/dead_rank_run.py RANK N ARGS...``: the freqalign CLI, in which process
``RANK`` kills itself with SIGKILL (no cleanup, no goodbye to the others) right after its
optimizer step N, as a process lost to the OOM killer or a failed node would be. The dead-rank
tests use it; the kill is real."""
import os
import signal
import sys

import torch

from freqalign.cli import main


def die_after(rank: int, steps: int) -> None:
    """Patch ``AdamW.step`` so that process ``rank`` is killed after ``steps`` calls."""
    step, done = torch.optim.AdamW.step, [0]

    def counted(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        done[0] += 1
        if done[0] == steps and int(os.environ.get("RANK", "0")) == rank:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    torch.optim.AdamW.step = counted


if __name__ == "__main__":
    die_after(int(sys.argv[1]), int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
