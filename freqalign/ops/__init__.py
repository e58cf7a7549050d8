"""Public frequency ops and backend registration (docs/design.md section 2)."""
import torch

from ..backend import load, register_backend
from . import compiled, fused_attention, torch_ref, triton_backend
from .dct import dct2d, idct2d
from .fused_attention import ms_attention
from .pool import freq_pool

register_backend("torch", torch_ref.load)
register_backend("cpu", compiled.load_cpu)
register_backend("cuda", compiled.load_cuda)
register_backend("triton", triton_backend.load)
# Load now the backends `auto` can pick on this machine: loading registers fake kernels and
# autograd, which torch.compile cannot trace, so a first call inside a compiled region
# (torch.compile(FreqPool(), fullgraph=True)) must find them loaded. A backend that fails to
# load is only marked unavailable.
load("torch")
load("cpu")
if torch.cuda.is_available():
    load("cuda")
    load("triton")
fused_attention.load_loaded_families()

__all__ = ["dct2d", "idct2d", "freq_pool", "ms_attention"]
