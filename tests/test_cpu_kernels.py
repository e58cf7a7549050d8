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
from numerics import accumulation, assert_within, bound, randn, relative_error

if backend.load("cpu") is None:
    pytest.skip("freqalign._C (the cpu backend) is not built", allow_module_level=True)

ops = torch.ops.freqalign
TESTS = os.path.dirname(os.path.abspath(__file__))
SIZES = [(1, 1), (3, 5), (7, 7), (13, 9), (14, 14), (32, 32), (56, 56)]


def random_filters(k, height, width, dtype=torch.float64, seed=0):
    return randn(k, height, width, seed=seed, dtype=dtype)


def layouts(x):
    """x (B, C, H, W) in every layout the kernels distinguish, all with the same values. The
    sliced view lives in a NaN-filled tensor: a kernel reading outside the view returns NaN."""
    big = torch.full((x.shape[0], x.shape[1] * 2, x.shape[2] + 2, x.shape[3] + 1), float("nan"), dtype=x.dtype)
    sliced = big[:, ::2, 1:-1, 1:]
    sliced.copy_(x)
    return {
        "contiguous": x,
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "sliced": sliced,
        "transposed": x.transpose(2, 3).contiguous().transpose(2, 3),
    }


# Bounds (tests/numerics.py): the kernels accumulate in fp32 (fp64 for fp64) over operands given
# in that dtype, and round the output once; the float64 reference (torch_ref) errs too, by the
# float64 bound of the same sums. Magnitudes are the same computations on absolute values.

def assert_transform(y, x, left, right, what):
    """``y = left @ x @ right^T`` within the bound of H + W accumulated terms."""
    x64, l64, r64 = x.double(), left.double(), right.double()
    exact = torch_ref.transform2d(x64, l64, r64).numpy()
    magnitude = torch_ref.transform2d(x64.abs(), l64.abs(), r64.abs()).numpy()
    terms = x.shape[-2] + x.shape[-1]
    limit = bound(magnitude, exact, relative_error(terms, accumulation(y.dtype)), y.dtype,
                  oracle=relative_error(terms, torch.float64) * magnitude)
    assert_within(y, exact, limit, what)


def assert_pool_forward(out, x, filters, grouped, what):
    """``out`` = pooling of ``x`` against ``filters`` within the bound of H * W accumulated terms."""
    x64, f64 = x.double(), filters.double()
    exact = torch_ref.pool_forward(x64, f64, grouped).numpy()
    magnitude = torch_ref.pool_forward(x64.abs(), f64.abs(), grouped).numpy()
    terms = x.shape[-2] * x.shape[-1]
    limit = bound(magnitude, exact, relative_error(terms, accumulation(out.dtype)), out.dtype,
                  oracle=relative_error(terms, torch.float64) * magnitude)
    assert_within(out, exact, limit, what)


def assert_pool_backward(out, grad, filters, grouped, what):
    """``out`` = the adjoint of pooling applied to ``grad``, within the bound of K terms (1 grouped)."""
    g64, f64 = grad.double(), filters.double()
    exact = torch_ref.pool_backward(g64, f64, grouped).numpy()
    magnitude = torch_ref.pool_backward(g64.abs(), f64.abs(), grouped).numpy()
    terms = 1 if grouped else filters.shape[0]
    limit = bound(magnitude, exact, relative_error(terms, accumulation(out.dtype)), out.dtype,
                  oracle=relative_error(terms, torch.float64) * magnitude)
    assert_within(out, exact, limit, what)


# transform2d ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced", "transposed"])
def test_transform2d_float64_layouts(size, layout):
    x = randn(3, 5, *size, seed=1)
    left, right = randn(size[0], size[0], seed=2), randn(size[1], size[1], seed=3)
    y = ops.transform2d(layouts(x)[layout], left, right)
    assert y.is_contiguous() and y.dtype == torch.float64 and y.shape == x.shape
    assert_transform(y, x, left, right, f"transform2d {size} {layout}")


@pytest.mark.parametrize("shape", [(13, 9), (5, 13, 9), (2, 3, 4, 7, 6)])
def test_transform2d_any_leading_dims(shape):
    x = randn(*shape, seed=4)
    left, right = dct_matrix(shape[-2]), dct_matrix(shape[-1])
    permuted = x.movedim(-3, 0).contiguous().movedim(0, -3) if x.dim() > 2 else x
    assert_transform(ops.transform2d(permuted, left, right), x, left, right, f"transform2d {shape}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(70001, 1, 1), (9001, 3, 5), (3001, 7, 7), (1001, 14, 13)])
def test_transform2d_many_planes_across_threads(dtype, shape):
    """Many planes: split over threads, rows written in place with lanes spilling into the next plane."""
    x = randn(*shape, seed=5, dtype=dtype)
    left, right = randn(shape[1], shape[1], seed=6, dtype=dtype), randn(shape[2], shape[2], seed=7, dtype=dtype)
    assert_transform(ops.transform2d(x, left, right), x, left, right, f"transform2d {shape} {dtype}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("size", [(3, 5), (14, 14), (56, 56)])
def test_transform2d_low_precision(dtype, size):
    x = randn(2, 6, *size, seed=8, dtype=dtype)
    left, right = dct_matrix(size[0], torch.float32), dct_matrix(size[1], torch.float32)
    y = ops.transform2d(x.contiguous(memory_format=torch.channels_last), left, right)
    assert y.dtype == dtype
    assert_transform(y, x, left, right, f"transform2d {size} {dtype}")


def test_transform2d_gradcheck():
    """gradcheck's float64 finite-difference tolerances: the op is linear, so they are exact up
    to float64 rounding, far inside them."""
    x = randn(2, 3, 5, 4, seed=9).requires_grad_(True)
    left, right = randn(5, 5, seed=10), randn(4, 4, seed=11)
    assert torch.autograd.gradcheck(lambda t: ops.transform2d(t, left, right), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.transform2d(t, left, right), (x,))


def test_transform2d_nan_reaches_every_output_of_its_plane():
    x = randn(2, 3, 4, 5, seed=12)
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
    x = randn(5, 6 * k if grouped else 7, *size, seed=13)
    filters = random_filters(k, *size, seed=14)
    out = ops.pool_forward(layouts(x)[layout], filters, grouped)
    assert out.shape == ((5, 6 * k) if grouped else (5, 7, k)) and out.dtype == torch.float64
    assert_pool_forward(out, x, filters, grouped, f"pool_forward {size} {layout} grouped={grouped}")


@pytest.mark.parametrize("channels,k", [(520, 4), (300, 300), (3, 1)])
def test_pool_forward_channels_last_groups(channels, k):
    """Channel blocks that split groups, one channel per group, one group (channels-last path)."""
    x = randn(1, channels, 3, 5, seed=15)
    filters = random_filters(k, 3, 5, seed=16)
    cl = x.contiguous(memory_format=torch.channels_last)
    for grouped in (True, False):
        assert_pool_forward(ops.pool_forward(cl, filters, grouped), x, filters, grouped, f"C={channels} K={k}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [(1, 7), (2, 4), (3, 3), (7, 7), (14, 14), (5, 13), (32, 32)])
def test_pool_forward_grouped_plane_blocks(dtype, size):
    """Grouped pooling of contiguous planes, several planes per step: groups of 19 channels (full
    blocks of 4 or 8 planes and a remainder), plane sizes below, at and above a vector (the tail
    vector), thread chunks that split blocks, and planes that are contiguous but channels that are
    not (a channel slice of a NaN-filled tensor)."""
    k, group = 3, 19
    filters = random_filters(k, *size, accumulation(dtype), seed=40)
    x = randn(37, k * group, *size, seed=41, dtype=dtype)
    big = torch.full((37, 2 * k * group, *size), float("nan"), dtype=dtype)
    every_other = big[:, ::2]
    every_other.copy_(x)
    for xx, layout in ((x, "contiguous"), (every_other, "channel-strided")):
        out = ops.pool_forward(xx, filters, True)
        assert out.dtype == dtype
        assert_pool_forward(out, x, filters, True, f"grouped {size} {dtype} {layout}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pool_forward_inf_in_the_overlapped_tail_stays_inf(dtype):
    """A 7x7 plane's last vector overlaps the one before it; an Inf in the overlap is counted once
    (+Inf out, not the NaN of Inf * 0)."""
    x = randn(2, 8, 7, 7, seed=42, dtype=dtype)
    x[0, 3].view(-1)[46] = float("inf")  # in the overlap: 41..47 for 8 lanes, 45..47 for 4
    filters = random_filters(1, 7, 7, dtype, seed=43).abs() + 0.1
    out = ops.pool_forward(x, filters, True)
    assert out[0, 3] == float("inf")
    finite = torch.ones_like(out, dtype=torch.bool)
    finite[0, 3] = False
    assert torch.isfinite(out[finite]).all()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
def test_pool_backward_float64(size, grouped):
    k = 3
    b, c = 5, (6 * k if grouped else 7)
    filters = random_filters(k, *size, seed=17)
    grad = randn(*((b, c) if grouped else (b, c, k)), seed=18)
    out = ops.pool_backward(grad, filters, grouped)
    assert out.is_contiguous() and out.shape == (b, c, *size)
    assert_pool_backward(out, grad, filters, grouped, f"pool_backward {size}")
    # Non-contiguous grads: transposed storage and expanded (stride-0) grads.
    strided = grad.transpose(0, 1).contiguous().transpose(0, 1)
    assert_pool_backward(ops.pool_backward(strided, filters, grouped), grad, filters, grouped, "transposed grad")
    expanded = randn(*((1, 1) if grouped else (1, 1, k)), seed=19).expand_as(grad)
    assert_pool_backward(ops.pool_backward(expanded, filters, grouped), expanded, filters, grouped, "expanded grad")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_pool_low_precision(dtype, grouped, layout):
    k, size = 4, (13, 9)
    x = randn(3, 8, *size, seed=20, dtype=dtype)
    filters = random_filters(k, *size, torch.float32, seed=21)
    out = ops.pool_forward(layouts(x)[layout], filters, grouped)
    assert out.dtype == dtype
    assert_pool_forward(out, x, filters, grouped, f"pool_forward {dtype} {layout}")
    grad = randn(*out.shape, seed=22, dtype=dtype)
    back = ops.pool_backward(grad, filters, grouped)
    assert back.dtype == dtype
    assert_pool_backward(back, grad, filters, grouped, f"pool_backward {dtype}")


@pytest.mark.parametrize("grouped", [True, False])
def test_pool_gradcheck(grouped):
    x = randn(2, 4, 3, 5, seed=23).requires_grad_(True)
    filters = random_filters(2, 3, 5, seed=24)
    assert torch.autograd.gradcheck(lambda t: ops.pool_forward(t, filters, grouped), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.pool_forward(t, filters, grouped), (x,))
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.pool_forward(t, filters, grouped), (xcl,))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
@pytest.mark.parametrize("grouped", [True, False])
def test_pool_nan_propagates_through_zero_weights(layout, grouped):
    x = randn(2, 4, 3, 4, seed=25)
    x[1, 2, 0, 0] = float("nan")
    filters = random_filters(2, 3, 4, seed=26)
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
    x = torch.zeros(2, 4, 3, 5)
    filters = torch.zeros(2, 3, 5)
    with pytest.raises(RuntimeError, match="filters must have dtype"):
        ops.pool_forward(x, filters.double(), True)
    with pytest.raises(RuntimeError, match="spatial size"):
        ops.pool_forward(x, torch.zeros(2, 5, 3), True)
    with pytest.raises(RuntimeError, match="C divisible by K"):
        ops.pool_forward(x, torch.zeros(3, 3, 5), True)
    with pytest.raises(RuntimeError, match="x must be float16, bfloat16, float32 or float64"):
        ops.pool_forward(x.int(), filters, True)
    with pytest.raises(RuntimeError, match="x must be 4-D"):
        ops.pool_forward(x[0], filters, True)
    with pytest.raises(RuntimeError, match="ungrouped grad must be 3-D"):
        ops.pool_backward(torch.zeros(2, 4), filters, False)
    with pytest.raises(RuntimeError, match="left must be"):
        ops.transform2d(x, torch.zeros(5, 5), torch.zeros(5, 5))
    with pytest.raises(RuntimeError, match="right must be contiguous"):
        ops.transform2d(x, torch.zeros(3, 3), torch.zeros(5, 5).t())


def test_empty_inputs():
    assert ops.transform2d(torch.zeros(0, 3, 4), torch.zeros(3, 3), torch.zeros(4, 4)).shape == (0, 3, 4)
    assert ops.pool_forward(torch.zeros(0, 4, 3, 5), torch.zeros(2, 3, 5), False).shape == (0, 4, 2)
    assert ops.pool_backward(torch.zeros(0, 4), torch.zeros(2, 3, 5), True).shape == (0, 4, 3, 5)


# every SIMD build ---------------------------------------------------------------------------

def isa_check() -> None:
    """Every op, dtype and layout of the SIMD build selected by FREQALIGN_CPU_ISA, within bounds."""
    for size in [(3, 5), (14, 14), (13, 9), (33, 17)]:
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            acc = accumulation(dtype)
            x = randn(2, 8, *size, seed=27, dtype=dtype)
            left, right = randn(size[0], size[0], seed=28, dtype=acc), randn(size[1], size[1], seed=29, dtype=acc)
            filters = randn(4, *size, seed=30, dtype=acc)
            for xx in (x, x.contiguous(memory_format=torch.channels_last)):
                assert_transform(ops.transform2d(xx, left, right), x, left, right, f"transform2d {size} {dtype}")
                one_group = ops.pool_forward(xx, filters[:1], True)  # 8 channels: a block of planes
                assert_pool_forward(one_group, x, filters[:1], True, f"pool_forward {size} {dtype} K=1")
                for grouped in (True, False):
                    out = ops.pool_forward(xx, filters, grouped)
                    assert_pool_forward(out, x, filters, grouped, f"pool_forward {size} {dtype} {grouped}")
                    g = randn(*out.shape, seed=31, dtype=dtype)
                    assert_pool_backward(ops.pool_backward(g, filters, grouped), g, filters, grouped,
                                         f"pool_backward {size} {dtype} {grouped}")


@pytest.mark.parametrize("isa", ["base", "avx2"])
def test_simd_builds_agree_with_reference(isa):
    """The in-process tests cover the widest build this CPU runs; these cover the narrower ones."""
    env = dict(os.environ, FREQALIGN_CPU_ISA=isa, OMP_NUM_THREADS="1")
    code = f"import sys; sys.path.insert(0, {TESTS!r}); import test_cpu_kernels; test_cpu_kernels.isa_check()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
