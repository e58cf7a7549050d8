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
# pi as a float64 tensor, not a Python float: torch.onnx's dynamo exporter rounds Python float
# scalars to float32, which would put a 1e-7 relative error into every cosine argument. A 0-d
# CPU tensor combines with tensors on any device.
_PI = torch.tensor(math.pi, dtype=torch.float64)


def dct_rows(index: torch.Tensor, n, norm: str = "ortho") -> torch.Tensor:
    """Rows ``index`` of the (n, n) orthonormal DCT-II matrix, in float64: ``c_u(t)`` for u in
    ``index``. ``norm="mean"`` divides them by sqrt(n), so a row product is ``B_uv / sqrt(H*W)``.

    Torch ops only, so ``n`` may be an int, a ``torch.export`` SymInt or a ``torch.jit.trace``
    size: an exported or traced graph builds its bases from the input's size.
    """
    t = torch.arange(n, dtype=torch.float64, device=index.device).unsqueeze(0)
    u = index.to(torch.float64).unsqueeze(1)
    weight = torch.where(index > 0, 2.0, 1.0).to(torch.float64).unsqueeze(1)
    scale = torch.sqrt(weight) / n if norm == "mean" else torch.sqrt(weight / n)
    return torch.cos((2 * t + 1) * u / (2 * n) * _PI) * scale


def _static(*sizes) -> bool:
    """True for plain int sizes outside torch.compile: the bases can be cached for them."""
    return all(isinstance(s, int) for s in sizes) and not torch.compiler.is_compiling()


@functools.lru_cache(maxsize=256)
def _cached_dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return dct_rows(torch.arange(n, device=device), n).to(dtype)


def dct_matrix(n: int, dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    """The (n, n) orthonormal DCT-II matrix ``C[u, t] = c_u(t)``; ``C @ x`` is ``dct(x, norm="ortho")``.

    Cached per (n, dtype, device) for int sizes; built each call for traced or symbolic sizes.
    """
    if _static(n):
        if n < 1:
            raise ValueError(f"DCT length must be at least 1, got {n}")
        return _cached_dct_matrix(n, dtype, torch.device(device))
    return dct_rows(torch.arange(n, device=device), n).to(dtype)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Kernels accumulate in float64 for float64 inputs and in float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _outer_filters(rows: torch.Tensor, cols: torch.Tensor, freqs: Tuple[Freq, ...], dtype) -> torch.Tensor:
    """(K, H, W) products ``rows[u] x cols[v]`` for each (u, v) of ``freqs``, cast to ``dtype``."""
    picked_rows = rows[[u for u, _ in freqs]].unsqueeze(2)
    picked_cols = cols[[v for _, v in freqs]].unsqueeze(1)
    return (picked_rows * picked_cols).to(dtype).contiguous()


def _build_filters(freqs: Tuple[Freq, ...], height, width, norm: str, dtype, device):
    rows = dct_rows(torch.arange(height, device=device), height, norm)
    cols = dct_rows(torch.arange(width, device=device), width, norm)
    return _outer_filters(rows, cols, freqs, dtype)


@functools.lru_cache(maxsize=256)
def _cached_filters(freqs, height, width, norm, dtype, device):
    return _build_filters(freqs, height, width, norm, dtype, device)


def pool_filters(freqs: Sequence[Freq], height: int, width: int, norm: str = "ortho",
                 dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    """The (K, H, W) basis images ``B_uv(h, w)`` for feature-size frequencies ``freqs``.

    ``norm="mean"`` divides by sqrt(H*W) so that (0, 0) is exactly the mean. Cached per
    (freqs, size, norm, dtype, device) for int sizes; built each call for traced or symbolic sizes.
    """
    if norm not in ("ortho", "mean"):
        raise ValueError(f"norm must be 'ortho' or 'mean', got {norm!r}")
    freqs = tuple((int(u), int(v)) for u, v in freqs)
    if _static(height, width):
        return _cached_filters(freqs, height, width, norm, dtype, torch.device(device))
    return _build_filters(freqs, height, width, norm, dtype, torch.device(device))


def grid_filters(freqs: Sequence[Freq], grid: int, height, width, norm: str = "ortho",
                 dtype: torch.dtype = torch.float64, device="cpu") -> torch.Tensor:
    """``pool_filters`` for grid frequencies, mapped to ``(u * H // grid, v * W // grid)`` by torch
    ops: what an exported or traced layer computes from its input's size (no collision check,
    which needs concrete sizes; :func:`grid_to_index` does it in eager)."""
    steps = torch.arange(grid, device=device)
    rows = dct_rows(steps * height // grid, height, norm)
    cols = dct_rows(steps * width // grid, width, norm)
    return _outer_filters(rows, cols, tuple(freqs), dtype)


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


def last_position(grid: int, size: int) -> int:
    """The last zigzag position at which a window of ``size`` frequencies fits on the grid."""
    return grid * grid - size


def window(position: int, size: int, grid: int = 7) -> Tuple[Freq, ...]:
    """Grid frequencies at zigzag positions ``position .. position + size - 1``."""
    total, last = grid * grid, last_position(grid, size)
    if not 1 <= size <= total:
        raise ValueError(f"window size must be in 1..{total} for a {grid}x{grid} grid, got {size}")
    if not 0 <= position <= last:
        raise ValueError(
            f"window position must be in 0..{last} for size {size} on a {grid}x{grid} grid, "
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
