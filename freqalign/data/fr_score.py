"""The full-reference label of the embedded dataset: colour MS-SSIM (YCbCr, 6:1:1).

MS-SSIM (Wang, Simoncelli and Bovik 2003) tracks perceived quality across blur, noise,
compression and contrast loss far better than PSNR, and needs only Gaussian filtering.
Choices (ours):
- computed on each of Y, Cb, Cr (BT.601, 0..255 range) and averaged 6:1:1, the weighting
  video coding uses for PSNR/SSIM-YUV, so colour loss (saturation, quantisation) counts;
- Gaussian window sigma 1.5 (11 taps), K1 = 0.01, 'valid' filtering as in the reference
  implementation, but K2 = 0.01 instead of Wang's 0.03: the smaller stabiliser makes the
  contrast-structure term relative to the crop's own contrast, so blurring a smooth crop
  (sky, moon) counts as a loss instead of scoring near 1. With 0.03 the label of a blurred
  crop mostly measured how textured the pristine crop was, which a blind model cannot see
  (embedded v3: source-trained models ranked target blur backwards);
- as many scales as the crop allows (3 for 64 x 64, at most 5), with the first scales of
  Wang's weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) renormalised to sum to 1;
- contrast-structure terms clamped at 0 so the weighted product is defined.
The result lies in [0, 1], 1 = identical (higher = better); the embedded dataset maps it
to its label with a fixed power (``embedded.LABEL_POWER``).
"""
import math

import torch
import torch.nn.functional as F

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
CHANNEL_WEIGHTS = (6.0 / 8.0, 1.0 / 8.0, 1.0 / 8.0)
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.01  # SSIM stabilisers (relative to the 0..255 range); see the docstring


def _filter_matrix(n: int) -> torch.Tensor:
    """(n, n - WINDOW + 1) matrix M with ``t @ M`` = 'valid' Gaussian filtering along the
    last axis (a banded Toeplitz matrix; float64 matmul is far faster than grouped conv)."""
    x = torch.arange(WINDOW, dtype=torch.float64) - (WINDOW - 1) / 2
    g = torch.exp(-x ** 2 / (2 * SIGMA ** 2))
    g = g / g.sum()
    m = torch.zeros(n, n - WINDOW + 1, dtype=torch.float64)
    for j in range(n - WINDOW + 1):
        m[j:j + WINDOW, j] = g
    return m


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """BT.601 full-range YCbCr of RGB ``x`` (B, 3, H, W) in 0..255."""
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], 1)


def num_scales(height: int, width: int) -> int:
    """Scales such that the coarsest map still holds one 11 x 11 window (at most 5)."""
    side = min(height, width)
    if side < WINDOW:
        raise ValueError(f"images must be at least {WINDOW} x {WINDOW} for MS-SSIM, "
                         f"got {height} x {width}")
    return min(len(MS_WEIGHTS), int(math.floor(math.log2(side / WINDOW))) + 1)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor):
    """Per-image luminance and contrast-structure means, separable 'valid' Gaussian filter."""
    c1, c2 = (K1 * 255) ** 2, (K2 * 255) ** 2
    mh, mw = _filter_matrix(x.shape[-2]), _filter_matrix(x.shape[-1])

    def filt(t):
        return mh.T @ (t @ mw)

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return lum.mean((-2, -1)), cs.mean((-2, -1))


@torch.no_grad()
def ms_ssim_color(reference: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
    """Colour MS-SSIM of ``distorted`` against ``reference`` (B, 3, H, W), uint8 or 0..255.

    Returns float64 (B,) in [0, 1], higher = better.
    """
    if reference.shape != distorted.shape or reference.dim() != 4 or reference.shape[1] != 3:
        raise ValueError("reference and distorted must both be (B, 3, H, W), got "
                         f"{tuple(reference.shape)} and {tuple(distorted.shape)}")
    x = rgb_to_ycbcr(reference.to(torch.float64))
    y = rgb_to_ycbcr(distorted.to(torch.float64))
    scales = num_scales(*x.shape[-2:])
    weights = torch.tensor(MS_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    score = torch.ones(x.shape[:2], dtype=torch.float64)
    for s in range(scales):
        lum, cs = _ssim_terms(x, y)
        term = lum * cs if s == scales - 1 else cs
        score = score * term.clamp(min=0.0) ** weights[s]
        if s < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    channel = torch.tensor(CHANNEL_WEIGHTS, dtype=torch.float64)
    return (score * channel).sum(1).clamp(0.0, 1.0)
