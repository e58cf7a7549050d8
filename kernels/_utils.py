"""Launch-time helpers shared by the Triton kernels: interpreter detection, precision, sizes."""
import functools
import os

import torch
import triton

TILE = 4096  # elements per register tile: 16 KB of fp32 per program per step (32 values per thread at 4 warps)
MIN_DOT = 16  # smallest M/N/K given to tl.dot: the NVIDIA minimum for 16-bit inputs (the interpreter accepts anything)


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
