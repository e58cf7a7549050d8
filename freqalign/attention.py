"""``MultiSpectralAttention``: FcaNet's multi-spectral channel attention on the fused pooling.

FcaNet (Qin et al., ICCV 2021, arXiv 2012.11879) is a squeeze-and-excitation block whose
squeeze is grouped DCT pooling: the C channels are split into K contiguous groups and group k
is pooled at the k-th frequency of a table chosen on a 7 x 7 grid. Its filter
``cos(pi * f * (t + 0.5) / N) / sqrt(N)``, times ``sqrt(2)`` for ``f != 0``, is the orthonormal
DCT-II basis (docs/design.md section 1), and its ``sum(x * filter)`` is ``freq_pool(..., norm="ortho")``.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from .backend import capturing
from .basis import Freq
from .ops.fused_attention import grid_attention
from .pooling import FreqPool


# FcaNet's frequency orderings on its 7 x 7 grid (``get_freq_indices`` in the FcaNet code),
# as "uv" pairs, u the row (height) frequency and v the column (width) frequency. "top": the
# frequencies ranked best by FcaNet's single-frequency ImageNet study; "low": low to high;
# "bot": the worst-ranked first. A named choice such as "top16" takes the first 16.
_FCANET_TABLES = {
    "top": "00 01 60 05 02 10 12 40 50 16 30 04 06 03 35 22 46 63 33 53 55 21 61 52 54 32 31 41 23 20 65 13",
    "low": "00 01 10 11 02 20 21 12 22 03 30 40 04 13 31 05 14 23 32 41 50 06 15 24 33 42 51 60 16 25 34 43",
    "bot": "66 14 34 36 26 43 11 24 44 45 56 15 42 62 25 51 64 13 65 20 23 41 31 32 54 52 61 21 55 53 33 63",
}
FCANET_GRID = 7
FCANET_COUNTS = (1, 2, 4, 8, 16, 32)


def fcanet_frequencies(name: str) -> Tuple[Freq, ...]:
    """The grid frequencies (u, v) of FcaNet's named choice, e.g. ``"top16"``, ``"low4"``, ``"bot32"``.

    Names are ``top``, ``low`` or ``bot`` followed by 1, 2, 4, 8, 16 or 32 (FcaNet's set); the
    frequencies are on FcaNet's 7 x 7 grid.
    """
    table, count = str(name)[:3], str(name)[3:]
    if table not in _FCANET_TABLES or not count.isdigit() or int(count) not in FCANET_COUNTS:
        choices = ", ".join(f"{t}{n}" for t in _FCANET_TABLES for n in (1, 16, 32))
        raise ValueError(f"unknown FcaNet frequency choice {name!r}: use top, low or bot followed by "
                         f"one of {FCANET_COUNTS} (e.g. {choices})")
    pairs = _FCANET_TABLES[table].split()[:int(count)]
    return tuple((int(p[0]), int(p[1])) for p in pairs)


def resolve_frequencies(freqs: Union[str, Sequence[Freq]], grid: int) -> Tuple[Freq, ...]:
    """Grid frequencies from a FcaNet name (``"top16"``; needs ``grid=7``) or explicit (u, v) pairs."""
    if isinstance(freqs, str):
        if grid != FCANET_GRID:
            raise ValueError(f"FcaNet's named frequency tables ({freqs!r}) are on a {FCANET_GRID}x"
                             f"{FCANET_GRID} grid; got grid={grid}. Use grid={FCANET_GRID} or give "
                             f"explicit (u, v) pairs")
        return fcanet_frequencies(freqs)
    return tuple((int(u), int(v)) for u, v in freqs)


class MultiSpectralAttention(nn.Module):
    """FcaNet's multi-spectral channel attention: ``x * sigmoid(W2 relu(W1 pool(x)))``.

    ``pool`` is grouped DCT pooling (``FreqPool(freqs, grid, grouped=True, norm="ortho")``):
    channel group k of K is pooled at grid frequency ``freqs[k]``, mapped to feature index
    ``(u * H // grid, v * W // grid)`` at the input's own size; ``W1`` (C -> C // reduction) and
    ``W2`` (C // reduction -> C) are bias-free linear layers, as in FcaNet.

    ``freqs``: a FcaNet table name (``"top16"``, ``"low4"``, ``"bot32"``, ...; see
    :func:`fcanet_frequencies`) or explicit grid (u, v) pairs; K must divide ``channels``.

    ``pool_size``: ``None`` (default) pools at the native feature size. An int or (h, w) first
    average-pools the input to that size when it differs (``F.adaptive_avg_pool2d``), as FcaNet
    does with its per-stage ``dct_h x dct_w`` (56, 28, 14, 7 in FcaNet-ResNet): this reproduces
    FcaNet exactly at any input size. At sizes divisible by 7, FcaNet's index ``u * (H // 7)``
    and freqalign's ``u * H // 7`` agree, so at FcaNet's own sizes both modes equal FcaNet.

    Parameter names follow FcaNet's layer (``fc.0.weight``, ``fc.2.weight``), so FcaNet weights
    load once its fixed ``dct_layer.weight`` filter buffers are dropped (freqalign keeps its
    bases outside the state_dict).
    """

    def __init__(self, channels: int, reduction: int = 16, freqs: Union[str, Sequence[Freq]] = "top16",
                 grid: int = 7, pool_size: Optional[Union[int, Tuple[int, int]]] = None):
        super().__init__()
        pairs = resolve_frequencies(freqs, grid)
        if channels < 1 or channels % max(len(pairs), 1) != 0:
            raise ValueError(f"MultiSpectralAttention splits its {channels} channels into one group per "
                             f"frequency ({len(pairs)} frequencies), so the count must divide channels")
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"reduction={reduction} leaves no hidden units for {channels} channels "
                             f"(channels // reduction must be at least 1)")
        self.channels, self.reduction = int(channels), int(reduction)
        self.freq_choice = freqs if isinstance(freqs, str) else None
        self.pool_size = (None if pool_size is None else
                          (int(pool_size), int(pool_size)) if isinstance(pool_size, int) else
                          tuple(int(s) for s in pool_size))
        self.pool = FreqPool(pairs, grid=grid, grouped=True, norm="ortho")
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A captured graph takes the pooled branch whatever its example's size (pooling to the
        # same size is the identity), so it stays right at other sizes.
        if self.pool_size is not None and (capturing() or tuple(x.shape[-2:]) != self.pool_size):
            weights = self.fc(self.pool(F.adaptive_avg_pool2d(x, self.pool_size)))
            return x * weights.view(x.shape[0], x.shape[1], 1, 1)
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"MultiSpectralAttention expects a (B, C, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return grid_attention(x, self.pool.freqs, self.pool.grid, self.fc[0].weight, self.fc[2].weight)

    def extra_repr(self) -> str:
        choice = f"freqs={self.freq_choice!r}, " if self.freq_choice else ""
        size = f", pool_size={self.pool_size}" if self.pool_size else ""
        return f"channels={self.channels}, reduction={self.reduction}, {choice}grid={self.pool.grid}{size}"


__all__ = ["MultiSpectralAttention", "fcanet_frequencies", "resolve_frequencies"]
