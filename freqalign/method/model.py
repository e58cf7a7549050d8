"""The FreqAlign model (docs/design.md section 4): backbone -> features F (B, C, H, W); a quality
regressor on GAP(F); a domain discriminator on FreqPool(window)(F) behind gradient reversal.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import torch
from torch import nn

from .. import storage
from ..errors import CheckpointError, ConfigError, MissingFileError
from ..nn import FreqPool
from .weights import load_checked


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


class SmallCNN(nn.Module):
    """A small conv net for the embedded demo: fast on two CPU cores, and it sees every pixel.

    A 3x3 stride-2 stem, then per further halving a stride-1 3x3 conv that widens and a
    stride-2 3x3 conv (BatchNorm + ReLU after each): the feature map is
    ``image_size / 2**downsample`` (64x64 -> 8x8 with 3, >= the 7x7 frequency grid) with
    ``width`` channels. The 3x3 stem replaced a 4x4 stride-4 patch stem, which averaged away
    the pixel-level cues (noise, JPEG blocks, quantisation steps) that quality depends on:
    held-out source SRCC 0.58 -> 0.73 with everything else equal
    (``benchmarks/results/method/learning.md``).
    """

    def __init__(self, width: int = 64, downsample: int = 3):
        super().__init__()
        if downsample < 1:
            raise ConfigError(f"cnn_downsample must be at least 1, got {downsample}")

        def block(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        chans = [max(width >> (downsample - 1 - i), 24) for i in range(downsample)]
        chans[-1] = width
        layers, c = block(3, chans[0], 2), chans[0]
        for i in range(1, downsample):
            wider = chans[min(i + 1, downsample - 1)]
            layers += block(c, chans[i], 1) + block(chans[i], wider, 2)
            c = wider
        self.body = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, x):
        return self.body(x)


def resnet50_weights(path: str) -> dict:
    """The ResNet-50 weights in file ``path``, loaded without running code
    (``freqalign.storage.load``): a torchvision ``resnet50`` state_dict, or a checkpoint holding
    one under ``state_dict`` or ``model``; ``module.`` prefixes (DDP) are dropped, and so is the
    ImageNet classifier ``fc``, which the features do not use. Anything else is a
    ``CheckpointError`` saying what was expected and what was found."""
    state = storage.load(path)
    if isinstance(state, dict):
        state = next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)),
                     state)
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(
            f"backbone_weights {path!r}: expected a torchvision resnet50 state_dict (a dict of "
            f"tensors), or a checkpoint holding one under 'state_dict' or 'model'; found "
            f"{_describe(state)}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))[:5]}"
    return f"a {type(obj).__name__}"


class ResNet50Features(nn.Module):
    """torchvision ResNet-50 up to layer4 (C = 2048), ImageNet-normalising its [0, 1] input.

    Weights come from a local file (``resnet50_weights``); nothing downloads.
    """

    def __init__(self, weights: str = ""):
        super().__init__()
        import torchvision

        if weights and not os.path.isfile(weights):
            raise MissingFileError(
                f"backbone_weights: no such file {weights!r}. Nothing is downloaded: on a machine "
                f"with internet access run `python -c \"import torchvision; torchvision.models."
                f"resnet50(weights='IMAGENET1K_V2')\"`, which saves torchvision's ImageNet weights "
                f"as ~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth, copy that file to "
                f"{weights!r} (or pass --backbone-weights PATH)")
        net = torchvision.models.resnet50(weights=None)
        if weights:
            _load_features(net, resnet50_weights(weights), weights)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                  net.layer1, net.layer2, net.layer3, net.layer4)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), False)
        self.out_channels = 2048

    def forward(self, x):
        return self.body((x - self.mean) / self.std)


def _load_features(net: nn.Module, state: dict, path: str) -> None:
    """Load ``state`` into torchvision ResNet-50 ``net`` (all but ``fc``), or raise
    CheckpointError."""
    load_checked(net, state, f"backbone_weights {path!r}", "a torchvision resnet50",
                 skip=lambda k: k.startswith("fc."))


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


BACKBONES = ("small-cnn", "resnet50", "efficientnet-lite0")


def build_backbone(cfg) -> nn.Module:
    """The backbone a config asks for (``BACKBONES``)."""
    if cfg.backbone == "small-cnn":
        return SmallCNN(cfg.cnn_width, cfg.cnn_downsample)
    if cfg.backbone == "resnet50":
        return ResNet50Features(cfg.backbone_weights)
    if cfg.backbone == "efficientnet-lite0":
        from .efficientnet_lite import EfficientNetLite0Features
        return EfficientNetLite0Features(cfg.frozen_blocks, cfg.backbone_weights)
    raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {cfg.backbone!r}")


def build_model(cfg) -> FreqAlignNet:
    """The model a config asks for (``backbone``: one of ``BACKBONES``)."""
    backbone = build_backbone(cfg)
    if backbone.out_channels % cfg.window_size != 0:
        raise ConfigError(f"window_size={cfg.window_size} must divide the backbone's "
                         f"{backbone.out_channels} channels (grouped frequency pooling)")
    return FreqAlignNet(backbone, cfg.regressor_hidden, cfg.disc_hidden, cfg.dropout, cfg.grid,
                        cfg.window_dc, cfg.disc_norm)


def check_grid(model: FreqAlignNet, image_size: int, grid: Optional[int]) -> tuple:
    """Feature map size for ``image_size`` crops; a clear error if a ``grid`` x ``grid``
    frequency grid cannot fit on it (None: no grid to fit)."""
    from ..basis import grid_to_index, zigzag

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
