"""``FreqPool`` and ``AdaptiveFreqPool2d``: drop-in replacements for global average pooling
(docs/design.md section 3)."""
from typing import Sequence, Tuple

import torch
from torch import nn

from .basis import Freq, grid_to_index, window
from .ops.pool import grid_pool


class FreqPool(nn.Module):
    """Pool (B, C, H, W) features at DCT frequencies chosen on a canonical ``grid`` x ``grid`` grid.

    With the defaults (frequency (0, 0), ``norm="mean"``) it equals
    ``nn.AdaptiveAvgPool2d(1)`` followed by flatten, so it can replace a pretrained network's
    pooling without changing its outputs. Grid frequency (u, v) maps to feature index
    ``(u * H // grid, v * W // grid)`` at every input size. The bases are cached per
    (frequencies, H, W, dtype, device) in ``freqalign.basis``, outside the state_dict.
    """

    def __init__(self, freqs: Sequence[Freq] = ((0, 0),), grid: int = 7,
                 grouped: bool = True, norm: str = "mean"):
        super().__init__()
        if norm not in ("ortho", "mean"):
            raise ValueError(f"norm must be 'ortho' or 'mean', got {norm!r}")
        self.grid = int(grid)
        self.grouped = bool(grouped)
        self.norm = norm
        self.window_position = None
        self.freqs = self._check_grid_freqs(freqs)

    def _check_grid_freqs(self, freqs) -> Tuple[Freq, ...]:
        pairs = tuple((int(u), int(v)) for u, v in freqs)
        if not pairs:
            raise ValueError("freqs is empty: give at least one grid frequency")
        grid_to_index(pairs, self.grid, self.grid, self.grid)  # range check on the grid itself
        return pairs

    def set_window(self, position: int, size: int) -> "FreqPool":
        """Pool at the grid frequencies in zigzag positions ``position .. position + size - 1``."""
        self.freqs = window(position, size, self.grid)
        self.window_position = (int(position), int(size))
        return self

    def set_freqs(self, freqs: Sequence[Freq]) -> "FreqPool":
        """Pool at explicit grid frequencies."""
        self.freqs = self._check_grid_freqs(freqs)
        self.window_position = None
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"FreqPool expects a (B, C, H, W) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return grid_pool(x, self.freqs, self.grid, grouped=self.grouped, norm=self.norm)

    def extra_repr(self) -> str:
        where = (f"window=(position={self.window_position[0]}, size={self.window_position[1]}), "
                 if self.window_position else "")
        shown = ", ".join(f"({u},{v})" for u, v in self.freqs[:8])
        more = f", ... ({len(self.freqs)} in all)" if len(self.freqs) > 8 else ""
        return (f"{where}freqs=[{shown}{more}], grid={self.grid}, grouped={self.grouped}, "
                f"norm={self.norm!r}")


class AdaptiveFreqPool2d(FreqPool):
    """``FreqPool`` shaped like ``nn.AdaptiveAvgPool2d(1)``: output (B, C, 1, 1), not (B, C).

    It takes the place of a network's global average pooling module whatever comes after it (a
    flatten in the forward, ConvNeXt's LayerNorm2d); only grouped pooling keeps C outputs, so
    ``grouped`` is fixed to True. ``replace_gap`` puts it in.
    """

    def __init__(self, freqs: Sequence[Freq] = ((0, 0),), grid: int = 7, norm: str = "mean"):
        super().__init__(freqs, grid=grid, grouped=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, :, None, None]


__all__ = ["FreqPool", "AdaptiveFreqPool2d"]
