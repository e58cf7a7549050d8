"""``freq_pool``: masked frequency pooling of (B, C, H, W) features at K DCT frequencies, and
``grid_pool``, the layers' call at grid frequencies."""
import torch

from .. import backend
from ..basis import accumulation_dtype, grid_filters, grid_to_index, pool_filters
from . import torch_ref
from .validate import check_float_tensor, parse_freqs


def freq_pool(x: torch.Tensor, freqs, *, grouped: bool = True, norm: str = "ortho") -> torch.Tensor:
    """Pool ``x (B, C, H, W)`` at DCT frequencies ``freqs`` (feature-size indices).

    ``freqs``: a (K, 2) integer tensor, a sequence of (u, v) pairs, or a boolean (H, W) mask.
    ``grouped=True`` (FcaNet): channels split into K contiguous groups, group k pooled at
    ``freqs[k]``, output (B, C). ``grouped=False``: every channel at every frequency, output
    (B, C, K). ``norm="ortho"`` gives DCT coefficients; ``norm="mean"`` divides by sqrt(H*W), so
    frequency (0, 0) is global average pooling.
    """
    check_float_tensor(x, "x", min_dim=4, exact_dim=4)
    if norm not in ("ortho", "mean"):
        raise ValueError(f"norm must be 'ortho' or 'mean', got {norm!r}")
    height, width = x.shape[-2], x.shape[-1]
    pairs = parse_freqs(freqs, height, width)
    if grouped and x.shape[1] % len(pairs) != 0:
        raise ValueError(f"grouped pooling splits the C={x.shape[1]} channels of x into K={len(pairs)} "
                         f"equal groups (one per entry of freqs), but {x.shape[1]} % {len(pairs)} != 0; "
                         f"use a K that divides C, or grouped=False")
    filters = pool_filters(pairs, height, width, norm, accumulation_dtype(x.dtype), x.device)
    pool = torch_ref.pool_forward if backend.capturing() else backend.select(x.device).pool_forward
    return pool(x, filters, grouped)


def grid_pool(x: torch.Tensor, freqs, grid: int, *, grouped: bool, norm: str) -> torch.Tensor:
    """:func:`freq_pool` at grid frequencies ``freqs``, mapped to ``(u * H // grid, v * W // grid)``.

    Eager and compiled: :func:`grid_to_index` (with its collision check) and the kernels. While a
    graph is captured for export: the plain formulation, its bases built from the traced size,
    so the graph works at every size (docs/design.md section 2, "Exporting").
    """
    if not backend.capturing():
        indices = grid_to_index(freqs, x.shape[-2], x.shape[-1], grid)
        return freq_pool(x, indices, grouped=grouped, norm=norm)
    filters = grid_filters(freqs, grid, x.shape[-2], x.shape[-1], norm, accumulation_dtype(x.dtype), x.device)
    return torch_ref.pool_forward(x, filters, grouped)
