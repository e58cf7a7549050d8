"""Public frequency ops and backend registration (DESIGN section 2)."""
from ..backend import register_backend
from . import compiled, torch_ref
from .dct import dct2d, idct2d
from .pool import freq_pool


def _load_triton():
    from ..kernels import load

    return load()


register_backend("torch", torch_ref.load)
register_backend("cpu", compiled.load_cpu)
register_backend("cuda", compiled.load_cuda)
register_backend("triton", _load_triton)

__all__ = ["dct2d", "idct2d", "freq_pool"]
