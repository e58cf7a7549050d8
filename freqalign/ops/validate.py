"""Argument checks shared by the public ops: clear errors that name the argument."""
import functools
from typing import Tuple

import torch

from ..basis import Freq


def check_float_tensor(x, name: str, min_dim: int, exact_dim: int = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float16, bfloat16, float32 or "
                        f"float64), got dtype {x.dtype}")
    if exact_dim is not None and x.dim() != exact_dim:
        raise ValueError(f"{name} must have {exact_dim} dimensions (B, C, H, W), "
                         f"got shape {tuple(x.shape)}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions (..., H, W), "
                         f"got shape {tuple(x.shape)}")


def parse_freqs(freqs, height: int, width: int) -> Tuple[Freq, ...]:
    """``freqs`` as a tuple of in-range (u, v) feature-size indices.

    Accepts a (K, 2) integer tensor, a boolean (H, W) mask (K = its true entries, row-major)
    or a sequence of (u, v) pairs. A tuple of int pairs at int sizes (what ``FreqPool`` passes)
    is checked once per (freqs, size): checking costs more than pooling a small map.
    """
    if type(freqs) is tuple and type(height) is int and type(width) is int and all(
            type(p) is tuple and len(p) == 2 and type(p[0]) is int and type(p[1]) is int for p in freqs):
        return _checked_pairs(freqs, height, width)
    return _parse(freqs, height, width)


@functools.lru_cache(maxsize=256)
def _checked_pairs(pairs: Tuple[Freq, ...], height: int, width: int) -> Tuple[Freq, ...]:
    return _parse(pairs, height, width)


def _parse(freqs, height: int, width: int) -> Tuple[Freq, ...]:
    if isinstance(freqs, torch.Tensor):
        if freqs.dtype == torch.bool:
            if tuple(freqs.shape) != (height, width):
                raise ValueError(f"freqs as a boolean mask must have the feature map's shape "
                                 f"{(height, width)}, got {tuple(freqs.shape)}")
            pairs = [tuple(p) for p in freqs.nonzero().tolist()]
        else:
            if freqs.is_floating_point() or freqs.is_complex():
                raise TypeError(f"freqs must be an integer (K, 2) tensor or a boolean mask, "
                                f"got dtype {freqs.dtype}")
            if freqs.dim() != 2 or freqs.shape[1] != 2:
                raise ValueError(f"freqs must have shape (K, 2), got {tuple(freqs.shape)}")
            pairs = [tuple(p) for p in freqs.tolist()]
    else:
        try:
            pairs = [tuple(p) for p in freqs]
        except TypeError:
            raise TypeError(f"freqs must be a (K, 2) integer tensor, a boolean mask or a sequence "
                            f"of (u, v) pairs, got {type(freqs).__name__}") from None
        for p in pairs:
            if len(p) != 2 or not all(isinstance(i, int) or (isinstance(i, torch.Tensor) and
                                                             not i.is_floating_point()) for i in p):
                raise TypeError(f"freqs entries must be integer (u, v) pairs, got {p!r}")
    if not pairs:
        raise ValueError("freqs is empty: give at least one frequency")
    pairs = tuple((int(u), int(v)) for u, v in pairs)
    for u, v in pairs:
        if not (0 <= u < height and 0 <= v < width):
            raise ValueError(f"freqs entry {(u, v)} is out of range for a {height}x{width} feature "
                             f"map (u must be in 0..{height - 1}, v in 0..{width - 1})")
    return pairs
