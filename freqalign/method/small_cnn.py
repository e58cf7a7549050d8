"""``small-cnn``: the scratch backbone of the embedded demo's ``scratch`` preset."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


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
