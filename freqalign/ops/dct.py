"""``dct2d`` and ``idct2d``: orthonormal 2-D DCT-II of every (H, W) plane and its exact inverse.

``dct2d(x) = C_H @ x @ C_W.T`` and ``idct2d(X) = C_H.T @ X @ C_W``; each is the other's
backward. The selected backend's ``transform2d`` kernel does the work; while a graph is
captured for export, the plain matmul formulation does (``backend.capturing``).
"""
import torch

from .. import backend
from ..basis import accumulation_dtype, dct_matrix
from . import torch_ref
from .validate import check_float_tensor


def _transform(x: torch.Tensor, name: str, inverse: bool) -> torch.Tensor:
    check_float_tensor(x, name, min_dim=2)
    dtype = accumulation_dtype(x.dtype)
    rows = dct_matrix(x.shape[-2], dtype, x.device)
    cols = dct_matrix(x.shape[-1], dtype, x.device)
    if inverse:
        rows, cols = rows.transpose(0, 1).contiguous(), cols.transpose(0, 1).contiguous()
    transform = torch_ref.transform2d if backend.capturing() else backend.select(x.device).transform2d
    return transform(x, rows, cols)


def dct2d(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dims; equals ``scipy.fft.dctn(x, norm="ortho", axes=(-2, -1))``."""
    return _transform(x, "x", inverse=False)


def idct2d(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2d` (orthonormal DCT-III over the last two dims)."""
    return _transform(coefficients, "coefficients", inverse=True)
