"""``torchrun ... tests/dead_rank_run.py RANK N SIGNAL ARGS...``: the freqalign CLI, in which
process ``RANK`` sends itself SIGKILL (dies: no cleanup, no goodbye to the others, as a process
lost to the OOM killer) or SIGSTOP (hangs: alive, its connections open, as a node that stopped
answering) right after its optimizer step N. The dead-rank tests use it; the signals are real."""
import os
import signal
import sys

import torch

from freqalign.cli import main


def die_after(rank: int, steps: int, signum: int) -> None:
    """Patch ``AdamW.step`` so that process ``rank`` gets ``signum`` after ``steps`` calls."""
    step, done = torch.optim.AdamW.step, [0]

    def counted(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        done[0] += 1
        if done[0] == steps and int(os.environ.get("RANK", "0")) == rank:
            os.kill(os.getpid(), signum)
        return out

    torch.optim.AdamW.step = counted


if __name__ == "__main__":
    die_after(int(sys.argv[1]), int(sys.argv[2]), getattr(signal, f"SIG{sys.argv[3]}"))
    sys.exit(main(sys.argv[4:]))
