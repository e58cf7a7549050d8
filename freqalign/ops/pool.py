"""``freq_pool``: masked frequency pooling of (B, C, H, W) features at K DCT frequencies."""
import torch

from .. import backend
from ..basis import accumulation_dtype, pool_filters
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
    return backend.select(x.device).pool_forward(x, filters, grouped)
