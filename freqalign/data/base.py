"""IQA dataset base classes and tensor transforms (docs/design.md section 5).

Every dataset yields ``(image, score)``: ``image`` a float32 tensor (3, h, w) in [0, 1] and
``score`` a float32 scalar in [0, 1], higher = better (pyiqa's normalised-MOS convention).
Each dataset also exposes ``scores`` (float64, (N,)) and ``groups`` ((N,), the content or
reference id) so that splits can be made disjoint by content without loading any image.
"""
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

Transform = Callable[[torch.Tensor], torch.Tensor]


class IQADataset(Dataset):
    """Base class: subclasses set ``name``, ``scores``, ``groups`` and implement ``load_image``."""

    name: str = "iqa"
    scores: np.ndarray
    groups: np.ndarray
    transform: Optional[Transform] = None

    def __len__(self) -> int:
        return int(len(self.scores))

    def load_image(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor (3, h, w) in [0, 1], before ``transform``."""
        raise NotImplementedError

    def __getitem__(self, index: int):
        image = self.load_image(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(self.scores[index], dtype=torch.float32)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
                f"groups={len(np.unique(self.groups))})")


def check_labels(scores, groups, n: int):
    """Validate and convert ``scores`` (-> float64 in [0, 1]) and ``groups`` (-> (N,) array)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if scores.shape[0] != n or groups.shape[0] != n:
        raise ValueError(f"scores ({scores.shape[0]}) and groups ({groups.shape[0]}) must "
                         f"have one entry per image ({n})")
    if n and (not np.all(np.isfinite(scores)) or scores.min() < 0.0 or scores.max() > 1.0):
        raise ValueError("scores must be finite and normalised to [0, 1] (higher = better)")
    return scores, groups


class TensorIQADataset(IQADataset):
    """An in-memory dataset: ``images_uint8`` (N, 3, h, w) uint8 tensor with its labels."""

    def __init__(self, images_uint8: torch.Tensor, scores, groups, name: str,
                 transform: Optional[Transform] = None):
        if not isinstance(images_uint8, torch.Tensor) or images_uint8.dtype != torch.uint8 \
                or images_uint8.dim() != 4 or images_uint8.shape[1] != 3:
            raise ValueError("images_uint8 must be a uint8 tensor of shape (N, 3, h, w), got "
                             f"{getattr(images_uint8, 'dtype', type(images_uint8))} "
                             f"{tuple(getattr(images_uint8, 'shape', ()))}")
        self.images = images_uint8
        self.scores, self.groups = check_labels(scores, groups, images_uint8.shape[0])
        self.name = name
        self.transform = transform

    def load_image(self, index: int) -> torch.Tensor:
        return self.images[index].to(torch.float32).div_(255.0)


def _check_size(size) -> tuple:
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(int(s) <= 0 for s in hw):
        raise ValueError(f"size must be a positive int or (h, w), got {size!r}")
    return int(hw[0]), int(hw[1])


def _crop_error(image: torch.Tensor, hw) -> ValueError:
    return ValueError(f"crop size {hw} is larger than the image {tuple(image.shape[-2:])}")


def center_crop(size) -> Transform:
    """The central ``size`` crop (deterministic; for evaluation)."""
    h, w = _check_size(size)

    def crop(image: torch.Tensor) -> torch.Tensor:
        H, W = image.shape[-2:]
        if h > H or w > W:
            raise _crop_error(image, (h, w))
        top, left = (H - h) // 2, (W - w) // 2
        return image[..., top:top + h, left:left + w]

    return crop
