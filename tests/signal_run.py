"""``python tests/signal_run.py N SIGNAL ARGS...``: the freqalign CLI, which sends itself
``SIGNAL`` (TERM or INT) right after the trainer's optimizer step N, and the same signal again
in the middle of the checkpoint write that follows (after the data, before the rename), as a
scheduler that signals twice would. The pre-emption tests use it; the signals are real."""
import os
import signal
import sys

import torch

from freqalign.cli import main


def signal_after(steps: int, signum: int) -> None:
    """Patch ``AdamW.step`` to signal after ``steps`` calls, and ``torch.save`` to signal again
    while it writes ``last.pt`` after that."""
    step, save, done = torch.optim.AdamW.step, torch.save, [0]

    def counted(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        done[0] += 1
        if done[0] == steps:
            os.kill(os.getpid(), signum)
        return out

    def saving(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        if done[0] >= steps and os.path.basename(f.name).startswith("last.pt"):
            os.kill(os.getpid(), signum)

    torch.optim.AdamW.step = counted
    torch.save = saving


if __name__ == "__main__":
    signal_after(int(sys.argv[1]), getattr(signal, f"SIG{sys.argv[2]}"))
    sys.exit(main(sys.argv[3:]))
