"""The backbone registry (docs/design.md section 4.1, "Adding a backbone").

Each backbone declares, under its config name (``backbone``), how to build it from a config,
its output channels C (known before building, so a bad ``window_size`` fails fast), where its
pretrained weights come from when ``backbone_weights`` is empty, and whether a config freezes
a stem whose outputs ``stem_cache`` may hold. The model builder, config validation and the
stem cache read this table; nothing else names a backbone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from torch import nn

from ..errors import ConfigError
from . import efficientnet_lite
from .resnet import ResNet50Features
from .small_cnn import SmallCNN


@dataclass(frozen=True)
class Backbone:
    """``build(cfg, weights_file)`` makes the module (RGB in [0, 1] -> (B, C, h, w), with
    ``out_channels``); ``channels(cfg)`` is its C. ``weights()``: the weights file used when
    ``backbone_weights`` is empty (None: then it starts from random weights).
    ``cached_stem(cfg)``: whether ``cfg`` freezes a stem whose outputs can be cached; such a
    module splits as ``module.stem`` (frozen) then ``module.trunk`` (None: never)."""
    build: Callable[[Any, str], nn.Module]
    channels: Callable[[Any], int]
    weights: Optional[Callable[[], str]] = None
    cached_stem: Optional[Callable[[Any], bool]] = None


_REGISTRY: Dict[str, Backbone] = {}


class _Names(Sequence):
    """The registered names, in registration order, as a live read-only sequence."""

    def __getitem__(self, index):
        return tuple(_REGISTRY)[index]

    def __len__(self):
        return len(_REGISTRY)

    def __repr__(self):
        return repr(tuple(_REGISTRY))


BACKBONES = _Names()  # what config key ``backbone`` allows


def register_backbone(name: str, backbone: Backbone) -> None:
    """Make ``backbone`` buildable as config ``backbone=name``."""
    _REGISTRY[name] = backbone


def unregister_backbone(name: str) -> None:
    """Remove a registered backbone (tests register toy ones)."""
    del _REGISTRY[name]


def get(name: str) -> Backbone:
    """The registered backbone ``name``; a ConfigError naming the choices if there is none."""
    if name not in _REGISTRY:
        raise ConfigError(f"backbone must be one of {', '.join(BACKBONES)}, got {name!r}")
    return _REGISTRY[name]


def build_backbone(cfg) -> nn.Module:
    """The backbone a config asks for, with ``backbone_weights`` or its default weights."""
    spec = get(cfg.backbone)
    return spec.build(cfg, cfg.backbone_weights or (spec.weights() if spec.weights else ""))


def caches_stem(cfg) -> bool:
    """Whether ``cfg``'s backbone has a frozen stem whose outputs can be cached."""
    spec = get(cfg.backbone)
    return spec.cached_stem is not None and spec.cached_stem(cfg)


def _small_cnn(cfg, weights: str) -> nn.Module:
    return SmallCNN(cfg.cnn_width, cfg.cnn_downsample)


def _resnet50(cfg, weights: str) -> nn.Module:
    return ResNet50Features(weights)


def _efficientnet_lite0(cfg, weights: str) -> nn.Module:
    return efficientnet_lite.EfficientNetLite0Features(cfg.frozen_blocks, weights)


def _frozen_blocks(cfg) -> bool:
    return cfg.frozen_blocks > 0


def _width(cfg) -> int:
    return cfg.cnn_width


def _constant(channels: int) -> Callable[[Any], int]:
    def channels_of(cfg) -> int:
        return channels

    return channels_of


register_backbone("small-cnn", Backbone(_small_cnn, _width))
register_backbone("resnet50", Backbone(_resnet50, _constant(2048)))
register_backbone("efficientnet-lite0", Backbone(
    _efficientnet_lite0, _constant(1280), efficientnet_lite.weights_path, _frozen_blocks))
