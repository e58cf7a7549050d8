"""An independent eager restatement of FcaNet's multi-spectral attention layer (Qin et al., ICCV
2021), the reference for tests/test_attention.py and the "FcaNet eager" variant of
benchmarks/models/model_bench.py.

It follows FcaNet's formulation, not freqalign's code: the frequency tables in FcaNet's
published form (separate row / column index lists on its 7 x 7 grid, scaled by ``size // 7``
to the DCT size), a (C, H, W) filter buffer built with Python cosine loops (filter k repeated
over its channel group), ``(x * filters).sum((2, 3))``, FC -> ReLU -> FC -> sigmoid, and
``x * weights``; inputs of another size are first average-pooled to the DCT size.
"""
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# FcaNet's frequency tables: row indices (x) and column indices (y) on the 7 x 7 grid.
TABLES = {
    "top": ([0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
            [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3]),
    "low": ([0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
            [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3]),
    "bot": ([6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
            [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3]),
}


def table(method: str):
    """FcaNet's (rows, cols) grid indices for a choice such as "top16"."""
    rows, cols = TABLES[method[:3]]
    count = int(method[3:])
    return rows[:count], cols[:count]


def cosine(position: int, freq: int, size: int) -> float:
    """One factor of FcaNet's filter: cos(pi f (t + 1/2) / N) / sqrt(N), times sqrt(2) if f != 0."""
    value = math.cos(math.pi * freq * (position + 0.5) / size) / math.sqrt(size)
    return value if freq == 0 else value * math.sqrt(2)


def filter_bank(channels: int, height: int, width: int, rows, cols) -> np.ndarray:
    """The (C, H, W) float64 buffer: filter k (feature-size indices rows[k], cols[k]) on channel
    group k of len(rows) contiguous groups."""
    bank = np.zeros((channels, height, width))
    part = channels // len(rows)
    for k, (u, v) in enumerate(zip(rows, cols)):
        for h in range(height):
            for w in range(width):
                bank[k * part:(k + 1) * part, h, w] = cosine(h, u, height) * cosine(w, v, width)
    return bank


class FcaNetAttention(nn.Module):
    """FcaNet's layer at DCT size ``dct_h x dct_w``. ``indices`` overrides FcaNet's own mapping
    of the grid table to the DCT size (``u * (dct_h // 7)``) with explicit feature indices."""

    def __init__(self, channels: int, dct_h: int, dct_w: int, reduction: int = 16, method: str = "top16",
                 indices=None):
        super().__init__()
        if indices is None:
            rows, cols = table(method)
            rows = [u * (dct_h // 7) for u in rows]
            cols = [v * (dct_w // 7) for v in cols]
        else:
            rows, cols = [p[0] for p in indices], [p[1] for p in indices]
        self.dct_h, self.dct_w = dct_h, dct_w
        self.register_buffer("weight", torch.from_numpy(filter_bank(channels, dct_h, dct_w, rows, cols)))
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.dct_h, self.dct_w):
            x = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        return (x * self.weight).sum(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        y = self.fc(self.squeeze(x)).view(n, c, 1, 1)
        return x * y.expand_as(x)


def from_attention(att: nn.Module, dct_h: int, dct_w: int, method: str = "top16", indices=None) -> FcaNetAttention:
    """A FcaNet layer with the FC weights of a freqalign ``MultiSpectralAttention`` ``att``."""
    first, second = att.fc[0], att.fc[2]
    eager = FcaNetAttention(first.in_features, dct_h, dct_w, first.in_features // first.out_features,
                            method, indices)
    eager.fc.load_state_dict(att.fc.state_dict())
    return eager.to(device=first.weight.device, dtype=first.weight.dtype)


FCANET_STAGE_SIZES = (56, 28, 14, 7)  # FcaNet-ResNet's DCT size per stage (its c2wh table)


def swap_in_eager(resnet: nn.Module, method: str = "top16") -> nn.Module:
    """Replace every ``att`` of a freqalign FcaNet-ResNet (``add_attention``) by FcaNet's eager
    layer with the same weights, at FcaNet's per-stage DCT sizes; in place."""
    for stage, size in enumerate(FCANET_STAGE_SIZES):
        for block in getattr(resnet, f"layer{stage + 1}"):
            block.att = from_attention(block.att, size, size, method)
    return resnet
