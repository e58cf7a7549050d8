"""The FreqAlign model (docs/design.md section 4): backbone -> features F (B, C, H, W); a quality
regressor on GAP(F); a domain discriminator on FreqPool(window)(F) behind gradient reversal.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import nn

from ..basis import grid_to_index, zigzag
from ..errors import ConfigError
from ..nn import FreqPool
from . import backbones, resnet, small_cnn, weights
from .backbones import build_backbone


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-lam`` backward (Ganin & Lempitsky, 2015)."""
    return _ReverseGrad.apply(x, float(lam))


def dann_lambda(progress: float, alpha: float = 1.0, gamma: float = 10.0) -> float:
    """DANN schedule ``alpha * (2 / (1 + exp(-gamma p)) - 1)`` for training progress p in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return alpha * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def mlp(inp: int, hidden: int, depth: int, dropout: float) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` (ReLU, dropout), then one output unit."""
    layers, d = [], inp
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = hidden
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


class FreqAlignNet(nn.Module):
    """Backbone + quality regressor (on GAP) + domain discriminator (on FreqPool(window), reversed).

    ``forward(x, lam)`` returns ``(score in [0, 1] (B,), domain logit (B,), GAP features (B, C))``;
    ``lam`` scales the reversed gradient that reaches the backbone from the discriminator.
    With ``window_dc`` the discriminator sees the DC beside the window: its input is
    ``[GAP(F), FreqPool(window)(F)]`` (2C wide; both halves are GAP while the window is GAP).
    With ``disc_norm`` the discriminator standardises its input first (BatchNorm without
    affine over the mixed batch), so a band whose coefficients are small is seen at GAP's scale.
    """

    def __init__(self, backbone: nn.Module, regressor_hidden: int = 128, disc_hidden: int = 1024,
                 dropout: float = 0.5, grid: int = 7, window_dc: bool = False,
                 disc_norm: bool = False):
        super().__init__()
        c = backbone.out_channels
        self.backbone = backbone
        self.gap = FreqPool(grid=grid)  # (0, 0) with norm="mean": exactly global average pooling
        self.regressor = mlp(c, regressor_hidden, 1, 0.0)
        self.pool = FreqPool(grid=grid)  # the discriminator's pooling: moved by set_window
        self.window_dc = bool(window_dc)
        width = c * (2 if window_dc else 1)
        self.discriminator = mlp(width, disc_hidden, 2, dropout)
        if disc_norm:  # every input feature at unit scale, whatever its frequency
            self.discriminator.insert(0, nn.BatchNorm1d(width, affine=False))
        self.from_stem = False

    def set_window(self, position, size: int):
        """Discriminator pools at zigzag positions ``position..+size``; ``None`` means GAP (DANN)."""
        if position is None:
            self.pool.set_freqs(((0, 0),))
        else:
            self.pool.set_window(int(position), int(size))

    def features(self, x):
        """Backbone features of images, or of cached stem outputs when ``from_stem`` is set
        (``method.stem_cache``; the backbone then runs its trunk only)."""
        return self.backbone.trunk(x) if self.from_stem else self.backbone(x)

    def quality(self, features):
        """``(score in [0, 1] (B,), GAP features (B, C))`` from backbone features."""
        g = self.gap(features)
        return torch.sigmoid(self.regressor(g)).squeeze(1), g

    def forward(self, x, lam: float = 0.0):
        f = self.features(x)
        score, g = self.quality(f)
        seen = torch.cat([g, self.pool(f)], 1) if self.window_dc else self.pool(f)
        logit = self.discriminator(grad_reverse(seen, lam)).squeeze(1)
        return score, logit, g


def build_model(cfg) -> FreqAlignNet:
    """The model a config asks for (``backbone``: a name in ``backbones.BACKBONES``)."""
    channels = backbones.get(cfg.backbone).channels(cfg)
    if channels % cfg.window_size != 0:
        raise ConfigError(f"window_size={cfg.window_size} must divide the backbone's "
                         f"{channels} channels (grouped frequency pooling)")
    backbone = build_backbone(cfg)
    return FreqAlignNet(backbone, cfg.regressor_hidden, cfg.disc_hidden, cfg.dropout, cfg.grid,
                        cfg.window_dc, cfg.disc_norm)


def check_grid(model: FreqAlignNet, image_size: int, grid: Optional[int]) -> tuple:
    """Feature map size for ``image_size`` crops; a clear error if a ``grid`` x ``grid``
    frequency grid cannot fit on it (None: no grid to fit)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        f = model.backbone(torch.zeros(1, 3, image_size, image_size,
                                       device=next(model.parameters()).device))
    model.train(was)
    h, w = f.shape[-2:]
    if grid is not None:
        try:
            grid_to_index(zigzag(grid), h, w, grid)
        except ValueError:
            raise ConfigError(f"grid={grid} is larger than the {h}x{w} feature map that "
                              f"image_size={image_size} gives: use grid <= {min(h, w)} or a "
                              f"larger image_size") from None
    return h, w


# names that moved out of this module: they still import from here, with a DeprecationWarning
_MOVED = {"SmallCNN": small_cnn, "ResNet50Features": resnet, "resnet50_weights": resnet,
          "load_checked": weights, "BACKBONES": backbones}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"freqalign.method.model.{name} is deprecated, use "
                  f"{_MOVED[name].__name__}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(_MOVED[name], name)
