"""The kernel checks on a CUDA GPU for every GPU backend (cuda, triton, torch) and dtype.

Skipped, with the reason, when no GPU is visible. A backend that is not available (extension
built without CUDA, triton missing) is skipped with its reason too, unless
``FREQALIGN_REQUIRE_GPU_BACKENDS=1`` (set by benchmarks/gpu/gpu_check.sh), which turns that into a
failure. float64 gradcheck runs on every backend (triton routes float64 to the reference).
"""
import os

import pytest
import torch

import freqalign
from attention_checks import check_ms_attention, make_case as make_attention_case
from freqalign import backend
from freqalign.basis import dct_matrix, pool_filters
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
@pytest.mark.parametrize("size", [(7, 7), (14, 13)], ids=str)
def test_autocast_policy(gpu_backend, size, dtype, autocast_dtype):
    """CUDA autocast (fp16 or bf16) lowers nothing: each op returns the dtype its fake kernel
    promises (the input's) within the bound of computing in the input's precision, forward and
    backward (tests/test_autocast.py has the CPU twin)."""
    x = make_input((2, 6, *size), dtype, "cuda", seed=32)
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


# -- paths the shapes above do not reach (issue #11) --------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("size", [(4, 4), (8, 8), (8, 16)], ids=str)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_four_lanes_per_row(gpu_backend, size, grouped, dtype):
    """Rows of at most 16 vectors go to the cuda backend's 4-lanes-per-row forward (8 rows per
    warp): with 16-byte vector loads when the rows are aligned and H*W is a multiple of the
    vector width (fp32 4x4 and 8x8, fp16/bf16 up to 8x16, fp64 4x4), element by element when
    misaligned; 8x16 in fp32 (32 vectors) and fp64 8x8 are the 32-lane side of the boundary."""
    check_pool((3, 24, *size), 4, grouped, "ortho", dtype, "cuda", gpu_backend)
    check_pool((5, 8, *size), 8, grouped, "mean", dtype, "cuda", gpu_backend)  # 40 rows: a partial warp
    x = _misaligned((3, 8, *size), dtype)
    freqs = [(0, 0), (1, 2), (size[0] - 1, size[1] - 1), (2, 3)]
    out = freqalign.freq_pool(x, freqs, grouped=grouped)
    check_pool_forward(out, x, freqs, grouped, "ortho", gpu_backend, f"misaligned {size} {dtype} grouped={grouped}")


@pytest.mark.parametrize("dtype", DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("size", [(64, 64), (64, 63), (17, 64)], ids=str)
def test_dct2d_largest_fused_planes(gpu_backend, size, dtype):
    """Planes of 64 on a side, the largest the fused kernels keep on chip: the cuda kernel's
    largest dynamic shared memory (float64 at 64x64: about 129 KB, fp32 about 65 KB, both over
    the 48 KB default, so the launch raises the limit), one plane per block."""
    check_dct_roundtrip((2, 3, *size), dtype, "cuda", gpu_backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["sliced", "cropped_channels_last", "expanded", "broadcast_channels"])
def test_sliced_and_expanded_inputs(gpu_backend, layout, dtype):
    """Views read in place with their own strides: a slice (every other channel, an inner
    window), a window of a channels_last map (channel stride 1, rows not mergeable), and the
    stride-0 expansions of the batch and of the channels (kernel_checks.make_input)."""
    check_dct_roundtrip((2, 6, 7, 7), dtype, "cuda", gpu_backend, layout)
    check_dct_roundtrip((2, 4, 14, 13), dtype, "cuda", gpu_backend, layout)
    for grouped in (True, False):
        check_pool((2, 12, 7, 7), 4, grouped, "ortho", dtype, "cuda", gpu_backend, layout)
        check_pool((3, 8, 14, 13), 2, grouped, "mean", dtype, "cuda", gpu_backend, layout)


@pytest.mark.parametrize("autocast_dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kernel_ops_keep_their_dtype_under_cuda_autocast(gpu_backend, dtype, autocast_dtype):
    """The backend's kernels themselves (not only the public ops) run with autocast off: under
    CUDA autocast each returns its input's dtype and the same bits as outside it (the kernels
    are deterministic), so an fp32 matmul is never lowered (tests/test_autocast.py: the CPU twin)."""
    kernels = backend.load(gpu_backend)
    x = make_input((2, 6, 14, 13), dtype, "cuda", seed=34)
    filters = pool_filters([(0, 0), (3, 4), (5, 1)], 14, 13, "ortho", torch.float32, "cuda")
    rows, cols = dct_matrix(14, torch.float32, "cuda"), dct_matrix(13, torch.float32, "cuda")
    grad_grouped = make_input((2, 6), dtype, "cuda", seed=35)
    grad_ungrouped = make_input((2, 6, 3), dtype, "cuda", seed=36)
    calls = {"transform2d": lambda: kernels.transform2d(x, rows, cols),
             "pool_forward grouped": lambda: kernels.pool_forward(x, filters, True),
             "pool_forward ungrouped": lambda: kernels.pool_forward(x, filters, False),
             "pool_backward grouped": lambda: kernels.pool_backward(grad_grouped, filters, True),
             "pool_backward ungrouped": lambda: kernels.pool_backward(grad_ungrouped, filters, False)}
    for name, call in calls.items():
        plain = call()
        with torch.autocast("cuda", dtype=autocast_dtype):
            inside = call()
        assert plain.dtype == inside.dtype == dtype, (name, plain.dtype, inside.dtype)
        torch.testing.assert_close(inside, plain, rtol=0, atol=0, msg=f"{name} changed under {autocast_dtype} autocast")


@pytest.mark.parametrize("autocast_dtype", [torch.float16, torch.bfloat16], ids=str)
def test_freq_pool_after_a_convolution_under_cuda_autocast(gpu_backend, autocast_dtype):
    """In a network under CUDA autocast a convolution hands freq_pool its autocast dtype: the
    pooled features keep that dtype (the same values as outside autocast: fp32 accumulation),
    and the backward reaches the fp32 weights."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1).cuda()
    x = make_input((2, 3, 14, 14), torch.float32, "cuda", seed=37)
    freqs = [(0, 0), (1, 2), (3, 1), (6, 6)]
    with torch.autocast("cuda", dtype=autocast_dtype):
        features = conv(x)
        grouped = freqalign.freq_pool(features, freqs, grouped=True)
        ungrouped = freqalign.freq_pool(features, freqs, grouped=False, norm="mean")
    assert features.dtype == grouped.dtype == ungrouped.dtype == autocast_dtype
    plain = features.detach()
    torch.testing.assert_close(grouped, freqalign.freq_pool(plain, freqs, grouped=True), rtol=0, atol=0)
    torch.testing.assert_close(ungrouped, freqalign.freq_pool(plain, freqs, grouped=False, norm="mean"),
                               rtol=0, atol=0)
    check_pool_forward(ungrouped, plain, freqs, False, "mean", gpu_backend, f"after a conv under {autocast_dtype}")
    (grouped.float().square().sum() + ungrouped.float().square().sum()).backward()
    assert conv.weight.grad.dtype == torch.float32 and torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (launches on a non-current device)")
def test_ops_on_a_gpu_other_than_the_current_one(gpu_backend):
    """Kernels launch on their tensors' device, not the current one (Triton launches are wrapped
    in torch.cuda.device(x.device); the CUDA ops use a device guard)."""
    with torch.cuda.device(0):
        check_dct_roundtrip((2, 6, 7, 7), torch.float32, "cuda:1", gpu_backend)
        for grouped in (True, False):
            check_pool((2, 12, 14, 13), 4, grouped, "ortho", torch.bfloat16, "cuda:1", gpu_backend)
        assert torch.cuda.current_device() == 0


# -- the fused attention op (issue #18) ----------------------------------------------------------

ATTENTION_SHAPES = [(2, 16, 7, 7), (3, 64, 14, 13), (2, 2048, 7, 7), (2, 256, 56, 56)]


@pytest.mark.parametrize("dtype", DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("how", ["nchw", "channels_last", "sliced"])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES, ids=str)
def test_ms_attention(gpu_backend, shape, how, dtype):
    """Output and gradients against the float64 reference within the derived bound
    (tests/attention_checks.py), in every layout."""
    fmt = torch.channels_last if how == "channels_last" else torch.contiguous_format
    check_ms_attention(shape, dtype, "cuda", fmt=fmt, sliced=how == "sliced", truncates=gpu_backend == "triton")


def test_ms_attention_gradcheck_and_compile(gpu_backend):
    """float64 gradcheck, and torch.compile(fullgraph) of the layer equal to eager."""
    x, _, w1, w2, freqs = make_attention_case((2, 8, 5, 6), torch.float64, "cuda", seed=3)
    args = tuple(t.double().requires_grad_(True) for t in (x, w1, w2))
    assert torch.autograd.gradcheck(lambda a, b, c: freqalign.ops.ms_attention(a, freqs, b, c), args)
    torch._dynamo.reset()
    layer = freqalign.MultiSpectralAttention(64, reduction=4).cuda()
    x = make_input((4, 64, 14, 14), torch.float32, "cuda", seed=5)
    torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), layer(x), rtol=1e-6, atol=1e-6)
