"""Random training transforms for the tests of a dataset's ``transform`` hook (the trainer
crops whole images itself, so the package has only ``center_crop``)."""
from typing import Callable, Sequence

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


def random_crop(size: int, hflip: bool = False) -> Transform:
    """A random ``size`` x ``size`` crop (and, with ``hflip``, a random horizontal flip, p = 0.5),
    drawn from torch's global generator."""

    def crop(image: torch.Tensor) -> torch.Tensor:
        H, W = image.shape[-2:]
        top = int(torch.randint(0, H - size + 1, ()))
        left = int(torch.randint(0, W - size + 1, ()))
        out = image[..., top:top + size, left:left + size]
        return random_hflip()(out) if hflip else out

    return crop


def random_hflip(p: float = 0.5) -> Transform:
    """Flip horizontally with probability ``p`` (torch's global generator)."""
    return lambda image: image.flip(-1) if bool(torch.rand(()) < p) else image


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def apply(image: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            image = t(image)
        return image

    return apply
