"""Ridge regression on standardised features: the probe's quality regressor (``search``) and
the hand-crafted-features baseline (``features``)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def ridge_fit(x: np.ndarray, y: np.ndarray, penalty: float,
              eps: float = 1e-6) -> Callable[[np.ndarray], np.ndarray]:
    """Fit ``y`` on the columns of ``x`` standardised by their mean and ``std + eps``, with an
    L2 ``penalty`` on the weights and an unpenalised offset (the mean of ``y``); returns
    ``predict(x_new)``."""
    mu, sd, offset = x.mean(0), x.std(0) + eps, y.mean()
    z = (x - mu) / sd
    w = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ (y - offset))
    return lambda q: ((q - mu) / sd) @ w + offset


__all__ = ["ridge_fit"]
