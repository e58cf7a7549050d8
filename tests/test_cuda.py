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
from kernel_checks import check_dct_roundtrip, check_nan_propagates, check_pool, make_input

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
    check_dct_roundtrip((3, 5, *size), dtype, "cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_dct2d_strided(gpu_backend, layout, dtype):
    check_dct_roundtrip((2, 6, 7, 7), dtype, "cuda", layout)
    check_dct_roundtrip((2, 4, 32, 32), dtype, "cuda", layout)


@pytest.mark.parametrize("shape", [(6, 5), (4, 12, 12), (2, 2, 3, 5, 6), (70000, 2, 2)], ids=str)
def test_dct2d_any_rank(gpu_backend, shape):
    check_dct_roundtrip(shape, torch.float32, "cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("size", POOL_SIZES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool(gpu_backend, size, grouped, dtype):
    check_pool((3, 24, *size), 4, grouped, "ortho", dtype, "cuda")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_strided(gpu_backend, layout, grouped, dtype):
    check_pool((4, 64, 7, 7), 16, grouped, "mean", dtype, "cuda", layout)
    check_pool((2, 13, 14, 14), 1, grouped, "ortho", dtype, "cuda", layout)  # C not a multiple of the vector


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_misaligned(gpu_backend, grouped, dtype):
    from freqalign.ops import torch_ref
    from freqalign.basis import pool_filters

    x = _misaligned((3, 16, 14, 14), dtype)
    freqs = [(0, 0), (1, 3), (5, 2), (13, 13)]
    out = freqalign.freq_pool(x, freqs, grouped=grouped)
    filters = pool_filters(freqs, 14, 14, "ortho", torch.float64, "cuda")
    ref = torch_ref.pool_forward(x.double(), filters, grouped)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-2 * ref.abs().max().item())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_large_map_split_and_many_filters(gpu_backend, grouped, dtype):
    check_pool((2, 8, 56, 56), 8, grouped, "mean", dtype, "cuda")  # few channels: H*W split over programs
    check_pool((2, 8, 56, 56), 8, grouped, "mean", dtype, "cuda", "channels_last")
    check_pool((2, 98, 7, 7), 49, grouped, "ortho", dtype, "cuda")  # all 49 frequencies: several filter passes
    check_pool((2, 8, 7, 7), 8, grouped, "ortho", dtype, "cuda", "channels_last")  # C < one channel tile


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_propagates(gpu_backend, dtype):
    check_nan_propagates(dtype, "cuda")


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 7), (14, 14)], ids=str)
def test_gradcheck_float64(gpu_backend, size):
    x = torch.randn(1, 2, *size, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(freqalign.dct2d, (x,))
    assert torch.autograd.gradcheck(freqalign.idct2d, (x,))
    assert torch.autograd.gradgradcheck(freqalign.dct2d, (x,))
    freqs = [(0, 0), (size[0] - 1, size[1] - 1)][: 1 if size == (1, 1) else 2]
    for grouped in (True, False):
        assert torch.autograd.gradcheck(lambda t: freqalign.freq_pool(t, freqs, grouped=grouped), (x,))
        assert torch.autograd.gradgradcheck(lambda t: freqalign.freq_pool(t, freqs, grouped=grouped), (x,))


@pytest.mark.parametrize("dtype", [torch.float32], ids=str)
def test_torch_compile_fullgraph(gpu_backend, dtype):
    """torch.compile traces the op (into the Triton kernels for triton) and matches eager, with grads."""
    if gpu_backend == "torch":
        pytest.skip("plain-PyTorch ops: nothing of freqalign's to trace (and inductor time is scarce)")
    torch._dynamo.reset()

    def step(t):
        return freqalign.dct2d(t).square().mean() + freqalign.freq_pool(t, [(0, 0), (1, 2)], grouped=False).sum()

    x = make_input((4, 8, 14, 14), dtype, "cuda").requires_grad_(True)
    eager = step(x)
    (eager_grad,) = torch.autograd.grad(eager, x)
    compiled = torch.compile(step, fullgraph=True)(x)
    (compiled_grad,) = torch.autograd.grad(compiled, x)
    tol = 1e-4
    torch.testing.assert_close(compiled.float(), eager.float(), rtol=tol, atol=tol)
    torch.testing.assert_close(compiled_grad.float(), eager_grad.float(), rtol=tol, atol=tol)
