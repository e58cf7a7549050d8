"""Launch-time helpers shared by the Triton kernels: interpreter detection, precision, sizes,
the device guard around launches."""
import contextlib
import functools
import os

import torch
import triton

TILE = 4096  # elements per register tile: 16 KB of fp32 per program per step (32 values per thread at 4 warps)
MIN_DOT = 16  # smallest M/N/K given to tl.dot: the NVIDIA minimum for 16-bit inputs (the interpreter accepts anything)
CUDA_GRID_YZ = 65535  # CUDA's limit on grid axes 1 and 2 (axis 0 takes up to 2**31 - 1)
MAX_GRID_X = 2 ** 31 - 1
MAX_GRID_YZ = CUDA_GRID_YZ  # programs a folded axis launches (each loops over the rest); tests lower it


def interpreting() -> bool:
    """True when Triton runs its CPU interpreter (``TRITON_INTERPRET=1``, read when triton is imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def pow2(n: int, lo: int = 1) -> int:
    return max(lo, triton.next_power_of_2(max(int(n), 1)))


def fp32_precision() -> str:
    """``tl.dot`` precision for float32 operands, following ``torch.get_float32_matmul_precision``.

    ``highest`` (torch's default, cuBLAS in full fp32) maps to ``tf32x3`` (three TF32 products,
    about fp32 accuracy); ``high`` and ``medium`` allow plain ``tf32`` (10-bit mantissa, 3x faster).
    """
    return "tf32x3" if torch.get_float32_matmul_precision() == "highest" else "tf32"


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def target_programs(device: torch.device) -> int:
    """How many programs fill the device: 8 per SM on a GPU (4 in the interpreter)."""
    if device.type != "cuda":
        return 4
    return 8 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())


def device_guard(device: torch.device):
    """The context to launch a Triton kernel for tensors on ``device`` in.

    A Triton launch runs on the *current* CUDA device (and its current stream), whatever device
    its tensors are on; a tensor on another GPU would be read through the wrong context. So
    every launch is wrapped in ``torch.cuda.device(device)`` (a no-op when it already is the
    current one). CPU tensors (the interpreter) need no guard, nor do fake CUDA tensors traced on
    a machine without a GPU (nothing launches then).
    """
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.device(device)
    return contextlib.nullcontext()
