"""Public frequency ops and backend registration (docs/design.md section 2)."""
import os

import torch

from ..backend import BACKEND_NAMES, ENV_VAR, load, register_backend
from . import compiled, fused_attention, torch_ref, triton_backend
from .dct import dct2d, idct2d
from .fused_attention import ms_attention
from .pool import freq_pool


def _with_attention(name: str, load_kernels):
    """A backend's loader: its three kernel ops, then its attention ops."""
    def loader():
        kernels = load_kernels()
        fused_attention.family(name)
        return kernels

    return loader


def _loaded_at_import():
    """The backends `auto` can pick on this machine, and any asked for by name: ``FREQALIGN_BACKEND``,
    or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter) for triton. Triton imports inductor,
    dynamo and sympy, so without a CUDA GPU it loads only when asked for (issue 24)."""
    names = ["torch", "cpu"]
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        names += ["cuda", "triton"]
    if os.environ.get(ENV_VAR) in BACKEND_NAMES:
        names.append(os.environ[ENV_VAR])
    return names


register_backend("torch", _with_attention("torch", torch_ref.load))
register_backend("cpu", _with_attention("cpu", compiled.load_cpu))
register_backend("cuda", _with_attention("cuda", compiled.load_cuda))
register_backend("triton", _with_attention("triton", triton_backend.load))
# Loading registers fake kernels and autograd, which torch.compile cannot trace, so a first call
# inside a compiled region (torch.compile(FreqPool(), fullgraph=True)) must find its backend
# loaded: the ones `auto` can pick load now, a named one when `use_backend` enters. A backend
# that fails to load is only marked unavailable.
for _name in _loaded_at_import():
    load(_name)

__all__ = ["dct2d", "idct2d", "freq_pool", "ms_attention"]
