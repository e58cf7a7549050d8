"""Pre-emption: a SIGTERM (SLURM, Kubernetes) or SIGINT (Ctrl-C) asks the trainer to stop; it
finishes its current step, saves ``checkpoints/last.pt`` and raises ``Interrupted``, which the
command line prints as one line with exit status 128 + the signal number. Further signals
while it saves are only noted, so they cannot cut a checkpoint in half. Under DDP the
processes agree on the step to stop at (one may see the signal a step later)."""
from __future__ import annotations

import signal
import threading

from ..errors import FreqAlignError
from . import distributed

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(FreqAlignError):
    """A run stopped by signal ``signum`` with its state saved; the message says where."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopRequests:
    """While entered, SIGTERM and SIGINT are noted instead of ending the process (in the main
    thread only: elsewhere signals keep their handlers); ``asked()`` is the signal to stop for."""

    def __init__(self):
        self.signum, self.before = 0, {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self.before = {s: signal.signal(s, self._note) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.before.items():
            signal.signal(s, handler)

    def _note(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def asked(self) -> int:
        """The signal number to stop for (0: go on), the same in every process (a collective)."""
        return distributed.largest(self.signum)


def name(signum: int) -> str:
    return signal.Signals(signum).name


__all__ = ["Interrupted", "StopRequests", "name"]
