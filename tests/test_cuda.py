"""The kernel checks on a CUDA GPU for every GPU backend (cuda, triton, torch) and dtype.

Skipped, with the reason, when no GPU is visible. A backend that is not available (extension
built without CUDA, triton missing) is skipped with its reason too, unless
``FREQALIGN_REQUIRE_GPU_BACKENDS=1`` (set by benchmarks/gpu_check.sh), which turns that into a
failure. float64 gradcheck runs on every backend (triton routes float64 to the reference).
"""
import os

import pytest
import torch

import freqalign
from kernel_checks import (assert_dct, autocast_ops, check_autocast, check_autocast_backward, check_dct_roundtrip,
                           check_nan_propagates, check_pool, check_pool_backward, check_pool_forward, make_input)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
DCT_SIZES = [(1, 1), (3, 5), (7, 7), (13, 9), (14, 14), (33, 20), (32, 32), (56, 56), (1, 96), (100, 72)]
POOL_SIZES = [(1, 1), (3, 5), (7, 7), (14, 14), (33, 20), (56, 56)]


@pytest.fixture(params=["torch", "cuda", "triton"], ids=lambda name: f"{name}_backend")
def gpu_backend(request):
    status = freqalign.backends()[request.param]
    if status != "available":
        message = f"{request.param} backend: {status}"
        if os.environ.get("FREQALIGN_REQUIRE_GPU_BACKENDS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with freqalign.use_backend(request.param):
        yield request.param


def _misaligned(shape, dtype):
    """A contiguous tensor whose data starts one element past an aligned address (no vector loads)."""
    flat = make_input((1 + torch.Size(shape).numel(),), dtype, "cuda")
    return flat[1:].view(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("size", DCT_SIZES, ids=str)
def test_dct2d_idct2d(gpu_backend, size, dtype):
    check_dct_roundtrip((3, 5, *size), dtype, "cuda", gpu_backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_dct2d_strided(gpu_backend, layout, dtype):
    check_dct_roundtrip((2, 6, 7, 7), dtype, "cuda", gpu_backend, layout)
    check_dct_roundtrip((2, 4, 32, 32), dtype, "cuda", gpu_backend, layout)


@pytest.mark.parametrize("shape", [(6, 5), (4, 12, 12), (2, 2, 3, 5, 6), (70000, 2, 2)], ids=str)
def test_dct2d_any_rank(gpu_backend, shape):
    check_dct_roundtrip(shape, torch.float32, "cuda", gpu_backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("size", POOL_SIZES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool(gpu_backend, size, grouped, dtype):
    check_pool((3, 24, *size), 4, grouped, "ortho", dtype, "cuda", gpu_backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_strided(gpu_backend, layout, grouped, dtype):
    check_pool((4, 64, 7, 7), 16, grouped, "mean", dtype, "cuda", gpu_backend, layout)
    # C not a multiple of the vector width
    check_pool((2, 13, 14, 14), 1, grouped, "ortho", dtype, "cuda", gpu_backend, layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_misaligned(gpu_backend, grouped, dtype):
    x = _misaligned((3, 16, 14, 14), dtype)
    freqs = [(0, 0), (1, 3), (5, 2), (13, 13)]
    out = freqalign.freq_pool(x, freqs, grouped=grouped)
    check_pool_forward(out, x, freqs, grouped, "ortho", gpu_backend, f"misaligned {dtype} grouped={grouped}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_large_map_split_and_many_filters(gpu_backend, grouped, dtype):
    # few channels: H*W split over programs
    check_pool((2, 8, 56, 56), 8, grouped, "mean", dtype, "cuda", gpu_backend)
    check_pool((2, 8, 56, 56), 8, grouped, "mean", dtype, "cuda", gpu_backend, "channels_last")
    check_pool((2, 98, 7, 7), 49, grouped, "ortho", dtype, "cuda", gpu_backend)  # all 49 frequencies: several passes
    check_pool((2, 8, 7, 7), 8, grouped, "ortho", dtype, "cuda", gpu_backend, "channels_last")  # C < one channel tile


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_propagates(gpu_backend, dtype):
    check_nan_propagates(dtype, "cuda")


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 7), (14, 14)], ids=str)
def test_gradcheck_float64(gpu_backend, size):
    x = make_input((1, 2, *size), torch.float64, "cuda", seed=31).requires_grad_(True)
    assert torch.autograd.gradcheck(freqalign.dct2d, (x,))
    assert torch.autograd.gradcheck(freqalign.idct2d, (x,))
    assert torch.autograd.gradgradcheck(freqalign.dct2d, (x,))
    freqs = [(0, 0), (size[0] - 1, size[1] - 1)][: 1 if size == (1, 1) else 2]
    for grouped in (True, False):
        assert torch.autograd.gradcheck(lambda t: freqalign.freq_pool(t, freqs, grouped=grouped), (x,))
        assert torch.autograd.gradgradcheck(lambda t: freqalign.freq_pool(t, freqs, grouped=grouped), (x,))


@pytest.mark.parametrize("autocast_dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_autocast_policy(gpu_backend, dtype, autocast_dtype):
    """CUDA autocast (fp16 or bf16) lowers nothing: each op returns the dtype its fake kernel
    promises (the input's) within the bound of computing in the input's precision, forward and
    backward (tests/test_autocast.py has the CPU twin)."""
    x = make_input((2, 6, 14, 13), dtype, "cuda", seed=32)
    check_autocast(x, autocast_dtype, gpu_backend)
    check_autocast_backward(x, autocast_dtype, gpu_backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_autocast_policy_compiled(gpu_backend, dtype):
    """torch.compile(fullgraph=True) under CUDA bf16 autocast keeps the same dtypes and bounds."""
    if gpu_backend == "torch":
        pytest.skip("plain-PyTorch ops: covered on CPU by tests/test_autocast.py (inductor time is scarce)")
    torch._dynamo.reset()
    compiled = torch.compile(autocast_ops, fullgraph=True)
    check_autocast(make_input((2, 6, 14, 13), dtype, "cuda", seed=33), torch.bfloat16, gpu_backend, run=compiled)


@pytest.mark.parametrize("dtype", [torch.float32], ids=str)
def test_torch_compile_fullgraph(gpu_backend, dtype):
    """torch.compile traces the ops (into the Triton kernels for triton): outputs and input
    gradients within the same worst-case bounds as eager (kernel_checks)."""
    if gpu_backend == "torch":
        pytest.skip("plain-PyTorch ops: nothing of freqalign's to trace (and inductor time is scarce)")
    torch._dynamo.reset()
    freqs = [(0, 0), (1, 2)]

    def step(t):
        return freqalign.dct2d(t), freqalign.freq_pool(t, freqs, grouped=False)

    x = make_input((4, 8, 14, 14), dtype, "cuda").requires_grad_(True)
    y, pooled = torch.compile(step, fullgraph=True)(x)
    assert_dct(y, x, gpu_backend, False, "compiled dct2d")
    check_pool_forward(pooled, x, freqs, False, "ortho", gpu_backend, "compiled freq_pool")
    g_y, g_pooled = make_input(y.shape, dtype, "cuda", seed=1), make_input(pooled.shape, dtype, "cuda", seed=2)
    (grad,) = torch.autograd.grad(y, x, g_y, retain_graph=True)
    assert_dct(grad, g_y, gpu_backend, True, "compiled dct2d backward")
    (grad,) = torch.autograd.grad(pooled, x, g_pooled)
    check_pool_backward(grad, g_pooled, freqs, False, "ortho", gpu_backend, "compiled freq_pool backward")
