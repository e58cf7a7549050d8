"""The hand-crafted-features baseline (a row of ``freqalign compare``): ridge regression on
classic no-reference image statistics, fit on the labelled source training split.

A trained network must beat this on its own data; when it does not, the network is not
learning quality. Statistics (on luminance unless said): contrast (std) and mean; mean
absolute Laplacian and Sobel gradient (sharpness); residual after Gaussian (sigma 1) and
median (3x3) smoothing (noise); 8x8 blockiness (JPEG: boundary over interior differences);
clipped share (exposure); colourfulness (Hasler and Suesstrunk 2003); used grey levels and
the share of zero neighbour differences (quantisation, pixelation). Features: the statistics,
their logs and the pairwise products of the standardised logs; ridge on standardised features.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .ridge import ridge_fit

LUMA = np.array([0.299, 0.587, 0.114])
RIDGE = 1.0  # ridge penalty on standardised features (fixed: no target labels choose it)


def _blockiness(y: np.ndarray, axis: int) -> float:
    d = np.abs(np.diff(y, axis=axis))
    idx = np.arange(d.shape[axis])
    edge = np.take(d, idx[idx % 8 == 7], axis=axis).mean()
    return float(edge / (np.take(d, idx[idx % 8 != 7], axis=axis).mean() + 1e-4))


def image_statistics(image: np.ndarray) -> np.ndarray:
    """The statistics of one image (3, h, w) float in [0, 1] -> (12,)."""
    rgb = np.asarray(image, np.float64)
    y = np.tensordot(LUMA, rgb, axes=1)
    rg, yb = rgb[0] - rgb[1], 0.5 * (rgb[0] + rgb[1]) - rgb[2]
    return np.array([
        y.std(), y.mean(),
        np.abs(ndimage.laplace(y)).mean(),
        np.hypot(ndimage.sobel(y, 0), ndimage.sobel(y, 1)).mean(),
        (y - ndimage.gaussian_filter(y, 1.0)).std(),
        np.abs(y - ndimage.median_filter(y, 3)).mean(),
        0.5 * (_blockiness(y, 0) + _blockiness(y, 1)),
        np.mean((rgb <= 1 / 255) | (rgb >= 254 / 255)),
        np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()),
        len(np.unique(np.round(y * 255))) / 256,
        np.mean(np.diff(y, axis=1) == 0),
        np.mean(np.diff(y, axis=0) == 0),
    ])


def feature_matrix(stats: np.ndarray, mu: np.ndarray = None, sd: np.ndarray = None):
    """Statistics -> ``(features, mu, sd)``: raw, log, and pairwise products of the
    standardised logs (``mu``/``sd`` from the training rows)."""
    logs = np.log(stats + 1e-3)
    if mu is None:
        mu, sd = logs.mean(0), logs.std(0) + 1e-6
    z = (logs - mu) / sd
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([stats, logs, z[:, i] * z[:, j]], axis=1), mu, sd


def dataset_statistics(dataset, indices=None, progress: bool = False) -> np.ndarray:
    """Statistics of every image (or ``indices``) of an IQA dataset -> (N, 12)."""
    from tqdm.auto import tqdm

    indices = range(len(dataset)) if indices is None else indices
    return np.stack([image_statistics(dataset[i][0].numpy())
                     for i in tqdm(indices, desc="features", disable=not progress, leave=False)])


class FeatureRidge:
    """Ridge regression on ``feature_matrix``; ``fit`` on source training statistics."""

    def fit(self, stats: np.ndarray, scores: np.ndarray) -> "FeatureRidge":
        x, self.mu, self.sd = feature_matrix(stats)
        self._predict = ridge_fit(x, np.asarray(scores, np.float64), RIDGE, eps=1e-9)
        return self

    def predict(self, stats: np.ndarray) -> np.ndarray:
        return self._predict(feature_matrix(stats, self.mu, self.sd)[0])


__all__ = ["image_statistics", "feature_matrix", "dataset_statistics", "FeatureRidge"]
