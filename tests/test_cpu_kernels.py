"""Kernel-level checks of the compiled CPU kernels (csrc/cpu) against freqalign.ops.torch_ref in float64.

The three ops are called directly (torch.ops.freqalign.*) on odd shapes, every layout path of the
kernels (contiguous, channels_last, sliced, transposed, expanded), every dtype and every SIMD build
(FREQALIGN_CPU_ISA). Skipped when the extension is not built.
"""
import os
import subprocess
import sys

import pytest
import torch

from freqalign import backend
from freqalign.basis import dct_matrix
from freqalign.ops import torch_ref

if backend.load("cpu") is None:
    pytest.skip("freqalign._C (the cpu backend) is not built", allow_module_level=True)

ops = torch.ops.freqalign
SIZES = [(1, 1), (3, 5), (7, 7), (13, 9), (14, 14), (32, 32), (56, 56)]
# Low-precision inputs are exact in float64; the kernels accumulate in float32 and round once, so
# the error is the output rounding plus a little: tolerance relative to the output's scale.
LOW_PRECISION_TOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 2e-6}


def random_filters(k, height, width, dtype=torch.float64):
    return torch.randn(k, height, width, dtype=torch.float64).to(dtype)


def layouts(x):
    """x (B, C, H, W) in every layout the kernels distinguish, all with the same values."""
    big = torch.randn(x.shape[0], x.shape[1] * 2, x.shape[2] + 2, x.shape[3] + 1, dtype=x.dtype)
    sliced = big[:, ::2, 1:-1, 1:]
    sliced.copy_(x)
    return {
        "contiguous": x,
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "sliced": sliced,
        "transposed": x.transpose(2, 3).contiguous().transpose(2, 3),
    }


def assert_close_scaled(actual, expected, tol):
    scale = expected.abs().max().clamp_min(1.0)
    torch.testing.assert_close(actual.double(), expected, rtol=tol, atol=tol * scale)


# transform2d ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced", "transposed"])
def test_transform2d_float64_layouts(size, layout):
    x = torch.randn(3, 5, *size, dtype=torch.float64)
    left, right = torch.randn(size[0], size[0], dtype=torch.float64), torch.randn(size[1], size[1], dtype=torch.float64)
    y = ops.transform2d(layouts(x)[layout], left, right)
    assert y.is_contiguous() and y.dtype == torch.float64 and y.shape == x.shape
    torch.testing.assert_close(y, torch_ref.transform2d(x, left, right), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(13, 9), (5, 13, 9), (2, 3, 4, 7, 6)])
def test_transform2d_any_leading_dims(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    left, right = dct_matrix(shape[-2]), dct_matrix(shape[-1])
    permuted = x.movedim(-3, 0).contiguous().movedim(0, -3) if x.dim() > 2 else x
    torch.testing.assert_close(ops.transform2d(permuted, left, right), torch_ref.transform2d(x, left, right),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(70001, 1, 1), (9001, 3, 5), (3001, 7, 7), (1001, 14, 13)])
def test_transform2d_many_planes_across_threads(dtype, shape):
    """Many planes: split over threads, rows written in place with lanes spilling into the next plane."""
    x = torch.randn(*shape, dtype=torch.float64)
    left, right = torch.randn(shape[1], shape[1], dtype=torch.float64), torch.randn(shape[2], shape[2], dtype=torch.float64)
    want = torch_ref.transform2d(x, left, right)
    got = ops.transform2d(x.to(dtype), left.to(dtype), right.to(dtype))
    assert_close_scaled(got, want, 1e-12 if dtype == torch.float64 else 2e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("size", [(3, 5), (14, 14), (56, 56)])
def test_transform2d_low_precision(dtype, size):
    x = torch.randn(2, 6, *size).to(dtype)
    acc = torch.float32
    left, right = dct_matrix(size[0], acc), dct_matrix(size[1], acc)
    y = ops.transform2d(x.contiguous(memory_format=torch.channels_last), left, right)
    assert y.dtype == dtype
    assert_close_scaled(y, torch_ref.transform2d(x.double(), left.double(), right.double()), LOW_PRECISION_TOL[dtype])


def test_transform2d_gradcheck():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    left, right = torch.randn(5, 5, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ops.transform2d(t, left, right), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.transform2d(t, left, right), (x,))


def test_transform2d_nan_reaches_every_output_of_its_plane():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    x[1, 2, 3, 0] = float("nan")
    # Identity rows: a kernel that skipped zero weights would leave most of the plane finite.
    y = ops.transform2d(x, torch.eye(4, dtype=torch.float64), dct_matrix(5))
    assert torch.isnan(y[1, 2]).all()
    assert torch.isfinite(y[0]).all() and torch.isfinite(y[1, :2]).all()


# pool_forward / pool_backward ---------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced", "transposed"])
def test_pool_forward_float64_layouts(size, grouped, layout):
    k = 3
    x = torch.randn(5, 6 * k if grouped else 7, *size, dtype=torch.float64)
    filters = random_filters(k, *size)
    out = ops.pool_forward(layouts(x)[layout], filters, grouped)
    assert out.shape == ((5, 6 * k) if grouped else (5, 7, k)) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch_ref.pool_forward(x, filters, grouped), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels,k", [(520, 4), (300, 300), (3, 1)])
def test_pool_forward_channels_last_groups(channels, k):
    """Channel blocks that split groups, one channel per group, one group (channels-last path)."""
    x = torch.randn(1, channels, 3, 5, dtype=torch.float64)
    filters = random_filters(k, 3, 5)
    cl = x.contiguous(memory_format=torch.channels_last)
    for grouped in (True, False):
        torch.testing.assert_close(ops.pool_forward(cl, filters, grouped), torch_ref.pool_forward(x, filters, grouped),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
def test_pool_backward_float64(size, grouped):
    k = 3
    b, c = 5, (6 * k if grouped else 7)
    filters = random_filters(k, *size)
    grad = torch.randn((b, c) if grouped else (b, c, k), dtype=torch.float64)
    expected = torch_ref.pool_backward(grad, filters, grouped)
    out = ops.pool_backward(grad, filters, grouped)
    assert out.is_contiguous() and out.shape == (b, c, *size)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # Non-contiguous grads: transposed storage and expanded (stride-0) grads.
    strided = grad.transpose(0, 1).contiguous().transpose(0, 1)
    torch.testing.assert_close(ops.pool_backward(strided, filters, grouped), expected, rtol=1e-12, atol=1e-12)
    one = torch.randn((1, 1) if grouped else (1, 1, k), dtype=torch.float64)
    expanded = one.expand_as(grad)
    torch.testing.assert_close(ops.pool_backward(expanded, filters, grouped),
                               torch_ref.pool_backward(expanded.contiguous(), filters, grouped), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_pool_low_precision(dtype, grouped, layout):
    k, size = 4, (13, 9)
    x = torch.randn(3, 8, *size).to(dtype)
    filters = random_filters(k, *size, torch.float32)
    out = ops.pool_forward(layouts(x)[layout], filters, grouped)
    assert out.dtype == dtype
    assert_close_scaled(out, torch_ref.pool_forward(x.double(), filters.double(), grouped), LOW_PRECISION_TOL[dtype])
    grad = torch.randn(out.shape).to(dtype)
    back = ops.pool_backward(grad, filters, grouped)
    assert back.dtype == dtype
    assert_close_scaled(back, torch_ref.pool_backward(grad.double(), filters.double(), grouped), LOW_PRECISION_TOL[dtype])


@pytest.mark.parametrize("grouped", [True, False])
def test_pool_gradcheck(grouped):
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64, requires_grad=True)
    filters = random_filters(2, 3, 5)
    assert torch.autograd.gradcheck(lambda t: ops.pool_forward(t, filters, grouped), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.pool_forward(t, filters, grouped), (x,))
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.pool_forward(t, filters, grouped), (xcl,))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("grouped", [True, False])
def test_pool_nan_propagates_through_zero_weights(layout, grouped):
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64)
    x[1, 2, 0, 0] = float("nan")
    filters = random_filters(2, 3, 4)
    filters[:, 0, 0] = 0.0  # the NaN sits on a zero weight: it must still poison its output
    out = ops.pool_forward(layouts(x)[layout], filters, grouped)
    assert torch.isnan(out[1, 2]).all()
    assert torch.isfinite(out[0]).all() and torch.isfinite(out[1, :2]).all()
    grad = torch.zeros(out.shape, dtype=torch.float64)
    grad[0, 1] = float("nan")
    back = ops.pool_backward(grad, filters, grouped)
    assert torch.isnan(back[0, 1]).all() and torch.isfinite(back[1]).all()


# argument checks ----------------------------------------------------------------------------

def test_errors_name_the_argument():
    x = torch.randn(2, 4, 3, 5)
    filters = torch.randn(2, 3, 5)
    with pytest.raises(RuntimeError, match="filters must have dtype"):
        ops.pool_forward(x, filters.double(), True)
    with pytest.raises(RuntimeError, match="spatial size"):
        ops.pool_forward(x, torch.randn(2, 5, 3), True)
    with pytest.raises(RuntimeError, match="C divisible by K"):
        ops.pool_forward(x, torch.randn(3, 3, 5), True)
    with pytest.raises(RuntimeError, match="x must be float16, bfloat16, float32 or float64"):
        ops.pool_forward(x.int(), filters, True)
    with pytest.raises(RuntimeError, match="x must be 4-D"):
        ops.pool_forward(x[0], filters, True)
    with pytest.raises(RuntimeError, match="ungrouped grad must be 3-D"):
        ops.pool_backward(torch.randn(2, 4), filters, False)
    with pytest.raises(RuntimeError, match="left must be"):
        ops.transform2d(x, torch.randn(5, 5), torch.randn(5, 5))
    with pytest.raises(RuntimeError, match="right must be contiguous"):
        ops.transform2d(x, torch.randn(3, 3), torch.randn(5, 5).t())


def test_empty_inputs():
    assert ops.transform2d(torch.randn(0, 3, 4), torch.randn(3, 3), torch.randn(4, 4)).shape == (0, 3, 4)
    assert ops.pool_forward(torch.randn(0, 4, 3, 5), torch.randn(2, 3, 5), False).shape == (0, 4, 2)
    assert ops.pool_backward(torch.randn(0, 4), torch.randn(2, 3, 5), True).shape == (0, 4, 3, 5)


# every SIMD build ---------------------------------------------------------------------------

_ISA_CHECK = """
import torch, freqalign.ops.compiled as compiled
from freqalign.ops import torch_ref
compiled.load_cpu()
ops = torch.ops.freqalign
torch.manual_seed(0)
for size in [(3, 5), (14, 14), (13, 9), (33, 17)]:
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
        x = torch.randn(2, 8, *size).to(dtype)
        ref = x.double()
        l, r = torch.randn(size[0], size[0], dtype=acc), torch.randn(size[1], size[1], dtype=acc)
        f = torch.randn(4, *size, dtype=acc)
        for xx in (x, x.contiguous(memory_format=torch.channels_last)):
            got = ops.transform2d(xx, l, r).double(); want = torch_ref.transform2d(ref, l.double(), r.double())
            assert (got - want).abs().max() <= tol * want.abs().max(), ("transform2d", size, dtype)
            for grouped in (True, False):
                got = ops.pool_forward(xx, f, grouped).double(); want = torch_ref.pool_forward(ref, f.double(), grouped)
                assert (got - want).abs().max() <= tol * want.abs().max(), ("pool_forward", size, dtype, grouped)
                g = torch.randn(want.shape).to(dtype)
                got = ops.pool_backward(g, f, grouped).double(); want = torch_ref.pool_backward(g.double(), f.double(), grouped)
                assert (got - want).abs().max() <= tol * want.abs().max(), ("pool_backward", size, dtype, grouped)
print("ok")
"""


@pytest.mark.parametrize("isa", ["base", "avx2"])
def test_simd_builds_agree_with_reference(isa):
    """The in-process tests cover the widest build this CPU runs; these cover the narrower ones."""
    env = dict(os.environ, FREQALIGN_CPU_ISA=isa, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _ISA_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
