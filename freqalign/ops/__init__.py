"""Public frequency ops and the built-in backends' registration (docs/design.md section 2)."""
import os

import torch

from ..backend import ENV_VAR, load, names, pickable, register_backend
from . import compiled, fused_attention, torch_ref, triton_backend
from .dct import dct2d, idct2d
from .fused_attention import ms_attention
from .pool import freq_pool


def _loaded_at_import():
    """The backends `auto` can pick on this machine, and any asked for by name: ``FREQALIGN_BACKEND``,
    or ``TRITON_INTERPRET=1`` (Triton's CPU interpreter) for triton. Triton imports inductor,
    dynamo and sympy, so without a CUDA GPU it loads only when asked for (issue 24)."""
    devices = ["cpu"]
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        devices.append("cuda")
    found = [name for device in devices for name in pickable(device)]
    if os.environ.get(ENV_VAR) in names():
        found.append(os.environ[ENV_VAR])
    return list(dict.fromkeys(found))


# The table: name, loader, attention ops, and the device types `auto` picks it for (the last
# registered first). Adding a backend: its file, and one line here.
register_backend("torch", torch_ref.load, attention=fused_attention.torch_ops, auto=("cpu", "cuda"))
register_backend("cpu", compiled.load_cpu, attention=fused_attention.compiled_ops, auto=("cpu",))
register_backend("cuda", compiled.load_cuda, attention=fused_attention.compiled_ops, auto=("cuda",))
register_backend("triton", triton_backend.load, attention=fused_attention.triton_ops,
                 auto=("cuda",))
# Loading registers fake kernels and autograd, which torch.compile cannot trace, so a first call
# inside a compiled region (torch.compile(FreqPool(), fullgraph=True)) must find its backend
# loaded: the ones `auto` can pick load now, a named one when `use_backend` enters. A backend
# that fails to load is only marked unavailable.
for _name in _loaded_at_import():
    load(_name)

__all__ = ["dct2d", "idct2d", "freq_pool", "ms_attention"]
