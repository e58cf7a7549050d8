"""Frequency math shared by every backend: the orthonormal DCT-II basis, the canonical
frequency grid, its zigzag order and windows over it (docs/design.md section 1).

Bases are built in float64 with torch ops (so ``torch.compile`` can trace them) and cast
once; eager calls are cached per (size, dtype, device).
"""
from __future__ import annotations

import functools
import math
from typing import Iterable, Sequence, Tuple

import torch

Freq = Tuple[int, int]


def _build_dct_matrix(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    u = torch.arange(n, dtype=torch.float64, device=device).unsqueeze(1)
    t = torch.arange(n, dtype=torch.float64, device=device).unsqueeze(0)
    basis = torch.cos(math.pi * (2 * t + 1) * u / (2 * n))
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64, device=device)
    scale[0] = math.sqrt(1.0 / n)
    return (basis * scale).to(dtype)


@functools.lru_cache(maxsize=256)
def _cached_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return _build_dct_matrix(n, dtype, device)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    """The (n, n) orthonormal DCT-II matrix ``C[u, t] = c_u(t)``; ``C @ x`` is ``dct(x, norm="ortho")``."""
    if n < 1:
        raise ValueError(f"DCT length must be at least 1, got {n}")
    if torch.compiler.is_compiling():
        return _build_dct_matrix(n, dtype, torch.device(device))
    return _cached_dct_matrix(int(n), dtype, torch.device(device))


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels accumulate in float64 for float64 inputs and in float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _build_filters(freqs: Tuple[Freq, ...], height: int, width: int, norm: str, dtype, device):
    rows = dct_matrix(height, torch.float64, device)
    cols = dct_matrix(width, torch.float64, device)
    u = torch.tensor([f[0] for f in freqs], device=device)
    v = torch.tensor([f[1] for f in freqs], device=device)
    filters = rows[u].unsqueeze(2) * cols[v].unsqueeze(1)
    if norm == "mean":
        filters = filters / math.sqrt(height * width)
    return filters.to(dtype).contiguous()


@functools.lru_cache(maxsize=256)
def _cached_filters(freqs, height, width, norm, dtype, device):
    return _build_filters(freqs, height, width, norm, dtype, device)


def pool_filters(freqs: Sequence[Freq], height: int, width: int, norm: str = "ortho",
                 dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    """The (K, H, W) basis images ``B_uv(h, w)`` for feature-size frequencies ``freqs``.

    ``norm="mean"`` divides by sqrt(H*W) so that (0, 0) is exactly the mean.
    """
    if norm not in ("ortho", "mean"):
        raise ValueError(f"norm must be 'ortho' or 'mean', got {norm!r}")
    freqs = tuple((int(u), int(v)) for u, v in freqs)
    if torch.compiler.is_compiling():
        return _build_filters(freqs, height, width, norm, dtype, torch.device(device))
    return _cached_filters(freqs, int(height), int(width), norm, dtype, torch.device(device))


@functools.lru_cache(maxsize=64)
def zigzag(grid: int = 7) -> Tuple[Freq, ...]:
    """All grid frequencies in JPEG zigzag order: by u + v, alternating direction per anti-diagonal."""
    if grid < 1:
        raise ValueError(f"grid must be at least 1, got {grid}")
    order = []
    for d in range(2 * grid - 1):
        diagonal = [(u, d - u) for u in range(grid) if 0 <= d - u < grid]
        # Odd diagonals run top-right to bottom-left (u increasing), even ones the other way.
        order.extend(diagonal if d % 2 == 1 else diagonal[::-1])
    return tuple(order)


def window(position: int, size: int, grid: int = 7) -> Tuple[Freq, ...]:
    """Grid frequencies at zigzag positions ``position .. position + size - 1``."""
    total = grid * grid
    if not 1 <= size <= total:
        raise ValueError(f"window size must be in 1..{total} for a {grid}x{grid} grid, got {size}")
    if not 0 <= position <= total - size:
        raise ValueError(
            f"window position must be in 0..{total - size} for size {size} on a {grid}x{grid} grid, "
            f"got {position}")
    return zigzag(grid)[position:position + size]


def grid_to_index(freqs: Iterable[Freq], height: int, width: int, grid: int = 7) -> Tuple[Freq, ...]:
    """Map canonical grid frequencies to feature-size indices ``(u*H // S, v*W // S)``.

    Raises ValueError when two distinct grid frequencies land on the same index (a map smaller
    than the grid); a choice that cannot collapse, such as ((0, 0),), works at any size.
    """
    freqs = tuple((int(u), int(v)) for u, v in freqs)
    for u, v in freqs:
        if not (0 <= u < grid and 0 <= v < grid):
            raise ValueError(f"grid frequency {(u, v)} is outside the {grid}x{grid} grid")
    mapped = tuple((u * height // grid, v * width // grid) for u, v in freqs)
    seen = {}
    for f, m in zip(freqs, mapped):
        if m in seen and seen[m] != f:
            raise ValueError(
                f"grid frequencies {seen[m]} and {f} both map to index {m} on a {height}x{width} "
                f"feature map (grid {grid}x{grid}): the map is smaller than the grid. Use a grid of "
                f"at most {min(height, width)}, fewer or lower frequencies, or a larger input.")
        seen[m] = f
    return mapped
