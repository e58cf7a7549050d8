"""One run per folder: process 0 holds an exclusive ``flock`` on ``OUT/run.lock`` while it
trains there, so a second run writing the same folder at once is refused with one line. The
lock is the kernel's, released when its process ends however it ends (kill -9 included), so a
crashed run leaves nothing stuck; the file itself only says who held it last."""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
import warnings

from ..errors import TrainingError, os_fault
from ..run.files import lock_file
from . import distributed


class RunLock:
    """Held while entered, by process 0 (``enabled``); every process raises if it is refused."""

    def __init__(self, out: str, enabled: bool):
        self.out, self.enabled, self.file = out, enabled, None
        self.path = lock_file(out)

    def __enter__(self) -> "RunLock":
        refused = None
        if self.enabled:
            try:
                self._acquire()
            except TrainingError as exc:
                refused = exc
        if distributed.any_process(refused is not None):
            raise refused or TrainingError(f"process 0 could not lock run folder {self.out}")
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None

    def _acquire(self) -> None:
        try:
            os.makedirs(self.out, exist_ok=True)
            self.file = open(self.path, "a+")
        except OSError as exc:
            raise os_fault("cannot write to run folder", self.out, exc) from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):  # no locks here (some NFS)
                warnings.warn(f"cannot lock {self.path} ({exc.strerror}): a second run in this "
                              "folder would not be refused", RuntimeWarning, stacklevel=3)
                return
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise TrainingError(f"run folder {self.out} is in use by {holder}; wait for that run "
                                "to end, or give this one another --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self.file.flush()


__all__ = ["RunLock"]
