"""How the trainer reads images: resumable and shardable batch streams, random training crops
and evaluation batches (the evaluation crop grid is ``freqalign.scoring``'s).

A stream's whole state is the number of batches it has handed out, so a resumed run replays
exactly the same batches: epoch ``e`` is a permutation seeded by ``(seed, e)``, dealt out
round-robin to the processes of a distributed run (each process gets its own images).
"""
from __future__ import annotations

from typing import Iterator, List

import torch
from torch.utils.data import DataLoader, Sampler

from ..scoring import check_fits


class _ResumableBatchSampler(Sampler):
    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int, start: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.start = rank, world, start
        self.per_epoch = max((n // world) // batch_size, 1)

    def __iter__(self) -> Iterator[List[int]]:
        k = self.start
        while True:
            epoch, offset = divmod(k, self.per_epoch)
            g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            mine = torch.randperm(self.n, generator=g)[self.rank::self.world]
            if len(mine) < self.batch_size:  # tiny dataset: sample with wrap-around
                mine = mine.repeat(self.batch_size // max(len(mine), 1) + 1)
            yield mine[offset * self.batch_size:(offset + 1) * self.batch_size].tolist()
            k += 1


def _as_list(items):
    return [img for img, _ in items], torch.stack([s for _, s in items])


class BatchStream:
    """Endless batches ``(images list, scores (B,))`` from ``dataset``; ``consumed`` is its state."""

    def __init__(self, dataset, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 workers: int = 0, consumed: int = 0):
        self.args = (dataset, batch_size, seed, rank, world, workers)
        self.consumed = consumed
        self._iter = None

    def seek(self, consumed: int) -> None:
        """Continue as if ``consumed`` batches had been handed out (resume, branch restarts)."""
        self.consumed, self._iter = int(consumed), None

    def __next__(self):
        if self._iter is None:
            dataset, batch_size, seed, rank, world, workers = self.args
            sampler = _ResumableBatchSampler(len(dataset), batch_size, seed, rank, world, self.consumed)
            # its own generator: creating the iterator must not draw from the global RNG
            # (a resumed run creates it at another step)
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                collate_fn=_as_list, persistent_workers=workers > 0,
                                generator=torch.Generator().manual_seed(seed + self.consumed))
            self._iter = iter(loader)
        self.consumed += 1
        return next(self._iter)


def crop_batch(images: list, size: int, generator: torch.Generator, hflip: bool = False,
               rot90: bool = False):
    """Stack random ``size`` x ``size`` crops of ``images`` (each at its own size), with random
    flips and rotations by a multiple of 90 degrees when asked, all drawn from ``generator``.
    Images already at ``size`` pass through unchanged unless a flip or rotation is asked for."""
    out = []
    for img in images:
        h, w = img.shape[-2:]
        check_fits(h, w, size)
        top = int(torch.randint(0, h - size + 1, (), generator=generator))
        left = int(torch.randint(0, w - size + 1, (), generator=generator))
        img = img[..., top:top + size, left:left + size]
        if hflip and bool(torch.rand((), generator=generator) < 0.5):
            img = img.flip(-1)
        if rot90:
            img = torch.rot90(img, int(torch.randint(0, 4, (), generator=generator)), (-2, -1))
        out.append(img)
    return torch.stack(out)


def eval_batches(dataset, batch_size: int, indices: List[int]):
    """Batches ``(images list, scores, positions)`` over ``indices`` of ``dataset``, in order."""
    for i in range(0, len(indices), batch_size):
        chunk = indices[i:i + batch_size]
        items = [dataset[j] for j in chunk]
        yield [im for im, _ in items], torch.stack([s for _, s in items]), chunk
