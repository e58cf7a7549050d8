"""``python tests/draws_run.py RECORD_DIR KILL_AFTER ARGS...``: the freqalign CLI with the random
state of every training batch recorded per process, and hard-killed after optimizer step
KILL_AFTER when it is above 0 (``killed_run.kill_after``).

Each process appends one line per batch to ``RECORD_DIR/rank<RANK>.jsonl``: digests of the crop
generator's state (which decides the crops, flips and rotations) and of torch's global RNG state
(dropout) as the batch is cropped. The DDP tests compare these between ranks and runs; the hook
lives here, so the package carries none."""
import hashlib
import json
import os
import sys

import torch

import freqalign.train.step as training_step
from freqalign.cli import main
from killed_run import kill_after


def digest(state: torch.Tensor) -> str:
    return hashlib.sha1(state.numpy().tobytes()).hexdigest()[:16]


def record_draws(folder: str) -> None:
    """Patch the trainer's ``crop_batch`` to record the random states it starts from."""
    crop = training_step.crop_batch
    path = os.path.join(folder, f"rank{os.environ.get('RANK', '0')}.jsonl")
    os.makedirs(folder, exist_ok=True)

    def recorded(images, size, generator, *args, **kwargs):
        with open(path, "a") as fh:
            fh.write(json.dumps({"crops": digest(generator.get_state()),
                                 "dropout": digest(torch.get_rng_state())}) + "\n")
        return crop(images, size, generator, *args, **kwargs)

    training_step.crop_batch = recorded


if __name__ == "__main__":
    record_draws(sys.argv[1])
    if int(sys.argv[2]) > 0:
        kill_after(int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
