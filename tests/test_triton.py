"""Every Triton kernel, forward and backward, under the Triton interpreter on CPU fp32 tensors.

``TRITON_INTERPRET=1`` only takes effect if it is set before triton is first imported, and
it must not leak into other test modules (on a GPU machine they run the compiled kernels).
So the ordinary pytest run collects one test here, ``test_interpreter_run``, which runs this
same file in a fresh ``python -m pytest`` subprocess with ``TRITON_INTERPRET=1``; inside that
subprocess the kernel tests below run and the runner skips itself. Running
``TRITON_INTERPRET=1 pytest tests/test_triton.py`` directly gives the per-test report.

Without triton these tests skip (triton is optional). With triton installed and
``FREQALIGN_REQUIRE_EXT=1`` (``make test``), anything that keeps them from running (triton or
its NVIDIA compiler failing to import, a skipped interpreter test) is a failure.
"""
import importlib
import importlib.util
import os

import pytest
import torch

import freqalign
from interpreter import IN_INTERPRETER, interpreted, run_interpreter_tests
from kernel_checks import (check_autocast, check_autocast_backward, check_dct_roundtrip,
                           check_nan_propagates, check_pool, make_input)
from numerics import TF32X3, relative_error

pytestmark = pytest.mark.triton

SIZES = [(1, 1), (3, 5), (7, 7), (8, 8), (13, 9), (14, 14), (33, 20), (1, 40)]


def require(module: str):
    """Import ``module``. Without triton: skip. With triton and FREQALIGN_REQUIRE_EXT=1: an
    import failure fails the test (otherwise it skips, with the reason)."""
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if os.environ.get("FREQALIGN_REQUIRE_EXT") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} does not import")


@pytest.mark.skipif(IN_INTERPRETER, reason="this process is the interpreter run")
def test_interpreter_run():
    """Every interpreter test passes; none may skip (they have no reason to but a broken setup)."""
    require("triton")
    run_interpreter_tests(__file__, "not test_interpreter_run and not sm90")


H100_SHARED_MEMORY = 232448  # bytes one block may use on sm_90 (227 KB)


def _compile_sm90(kernel, pointers, config):
    """Compile ``kernel`` for sm_90 ahead of time (no GPU needed) with a launcher's config.

    ``config`` holds the constexpr arguments and the launch options; ints are typed i32.
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    options = {key: config[key] for key in ("num_warps", "num_stages")}
    constexprs = {key: value for key, value in config.items() if key not in options}
    signature = {name: "constexpr" if name in constexprs else pointers.get(name, "i32") for name in kernel.arg_names}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
    assert compiled.metadata.shared <= H100_SHARED_MEMORY, (kernel.__name__, config, compiled.metadata.shared)
    return compiled


@pytest.mark.skipif(IN_INTERPRETER, reason="needs the compiling (non-interpreter) triton")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_for_sm90(dtype):
    """Every kernel compiles to an sm_90 cubin at representative launch configs.

    The interpreter accepts things the GPU compiler rejects (tl.dot shapes, layouts), so this
    runs Triton's real NVIDIA pipeline (TTIR -> PTX -> ptxas) without a GPU.
    """
    require("triton.backends.nvidia.compiler")
    from freqalign.kernels import pool, transform2d

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    acc = "*fp32"
    for size in [(7, 7), (14, 14), (32, 32), (56, 56)]:
        kernel, constexprs = transform2d.launch_config(*size, 32 * 2048, torch_dtype)
        if kernel is transform2d._kronecker_kernel:
            constexprs["MERGED"] = True
        constexprs["FLAT_PLANES"] = True
        _compile_sm90(kernel, dict(x_ptr=f"*{dtype}", left_ptr=acc, right_ptr=acc, y_ptr=f"*{dtype}"), constexprs)
    for shape, channels_last, grouped, k in [((32, 2048, 7, 7), False, True, 16), ((32, 2048, 7, 7), True, False, 16),
                                             ((8, 256, 56, 56), False, False, 49), ((8, 256, 56, 56), True, True, 4)]:
        b, c, h, w = shape
        strides = (c * h * w, 1, w * c, c) if channels_last else (c * h * w, h * w, w, 1)
        config = pool.forward_config(shape, strides, grouped, k, torch_dtype, 1056)
        for key in ("k_blocks", "split", "span"):
            config.pop(key)
        out = "*fp32" if dtype == "fp32" else f"*{dtype}"
        _compile_sm90(pool._pool_forward_kernel, dict(x_ptr=f"*{dtype}", f_ptr=acc, out_ptr=out), config)
        _compile_sm90(pool._pool_backward_kernel, dict(g_ptr=f"*{dtype}", f_ptr=acc, out_ptr=f"*{dtype}"),
                      pool.backward_config(c, h * w, k, grouped, torch_dtype))


@pytest.fixture
def triton_backend():
    status = freqalign.backends()["triton"]
    assert status == "available", f"triton backend: {status}"
    with freqalign.use_backend("triton"):
        yield


@interpreted
def test_backend_accepts_cpu_tensors_in_interpreter():
    from freqalign import backend

    assert backend.load("triton").devices == ("cpu", "cuda")


@interpreted
@pytest.mark.parametrize("size", SIZES)
def test_dct2d_idct2d(triton_backend, size):
    check_dct_roundtrip((2, 3, *size), torch.float32, "cpu", "triton")


@interpreted
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
def test_dct2d_strided_input(triton_backend, layout):
    check_dct_roundtrip((2, 3, 7, 7), torch.float32, "cpu", "triton", layout)
    check_dct_roundtrip((2, 3, 13, 9), torch.float32, "cpu", "triton", layout)


@interpreted
@pytest.mark.parametrize("shape", [(6, 5), (4, 12, 12), (2, 2, 3, 5, 6)])
def test_dct2d_any_rank(triton_backend, shape):
    check_dct_roundtrip(shape, torch.float32, "cpu", "triton")


@interpreted
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool(triton_backend, size, grouped):
    check_pool((2, 12, *size), 3, grouped, "ortho", torch.float32, "cpu", "triton")


@interpreted
@pytest.mark.parametrize("layout", ["channels_last", "transposed"])
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_strided_input(triton_backend, layout, grouped):
    check_pool((2, 12, 7, 7), 4, grouped, "mean", torch.float32, "cpu", "triton", layout)
    check_pool((3, 20, 14, 14), 2, grouped, "ortho", torch.float32, "cpu", "triton", layout)


@interpreted
@pytest.mark.parametrize("grouped", [True, False])
def test_freq_pool_many_frequencies_and_split_reduction(triton_backend, grouped):
    # K=80 > 64 exercises several K blocks; one image with few channels and a 40x40 map makes
    # the forward split H*W over programs and add the partial sums
    check_pool((2, 80, 9, 9), 80, grouped, "ortho", torch.float32, "cpu", "triton")
    check_pool((1, 4, 40, 40), 2, grouped, "mean", torch.float32, "cpu", "triton")


@interpreted
@pytest.mark.parametrize("size", [(7, 7), (14, 14), (33, 20)])
def test_half_precision_paths(triton_backend, size):
    """fp16 everywhere, bf16 for pooling: the interpreter's bf16 tl.dot is wrong (a Triton
    interpreter limitation, checked in test_cuda on a GPU), and only dct2d multiplies in bf16."""
    check_dct_roundtrip((2, 3, *size), torch.float16, "cpu", "triton")
    for dtype in (torch.float16, torch.bfloat16):
        for grouped in (True, False):
            check_pool((2, 12, *size), 3, grouped, "ortho", dtype, "cpu", "triton", "channels_last")


@interpreted
@pytest.mark.parametrize("size", [(7, 7), (14, 13)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_autocast_policy(triton_backend, size, dtype):
    """Under CPU autocast (bf16), fp32 stays fp32 and fp16/bf16 keep their dtype (see
    tests/test_autocast.py); bf16 only for pooling (the interpreter's bf16 tl.dot is wrong).
    The fake kernels' dtypes are checked on a GPU (tests/test_cuda.py): the interpreter cannot
    run under FakeTensorMode, it reads the tensors' data."""
    names = ("pool_grouped", "pool_ungrouped") if dtype == torch.bfloat16 else \
        ("dct2d", "idct2d", "pool_grouped", "pool_ungrouped")
    x = make_input((2, 6, *size), dtype, "cpu", seed=21)
    check_autocast(x, torch.bfloat16, "triton", names, check_fake=False)
    check_autocast_backward(x, torch.bfloat16, "triton", names)


@interpreted
def test_nan_propagates(triton_backend):
    check_nan_propagates(torch.float32, "cpu")


@interpreted
def test_float64_is_routed_to_the_reference(triton_backend):
    check_dct_roundtrip((2, 3, 7, 7), torch.float64, "cpu", "triton")
    check_pool((2, 6, 7, 7), 3, True, "ortho", torch.float64, "cpu", "triton")


@interpreted
def test_second_order_gradient(triton_backend):
    """d/dx sum(dL/dx) for L = sum(pool(x)^2) is ``2 P^T P 1``: the backward of the backward, a
    pool_forward of ones then a pool_backward. Bound: the chained errors of both passes (49 + 2
    terms, fp32 filters, tf32x3 dots) and of the float64 reference, on ``2 |P|^T |P| 1``."""
    freqs = [(0, 0), (1, 2)]
    x = make_input((2, 4, 7, 7), torch.float32, "cpu", seed=22).requires_grad_(True)
    out = freqalign.freq_pool(x, freqs, grouped=False)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    (grad2,) = torch.autograd.grad(grad.sum(), x)
    with freqalign.use_backend("torch"):
        filters = freqalign.basis.pool_filters(freqs, 7, 7, "ortho").abs()
        ones = torch.ones(2, 4, 7, 7, dtype=torch.float64)
        magnitude = 2 * freqalign.ops.torch_ref.pool_backward(
            freqalign.ops.torch_ref.pool_forward(ones, filters, False), filters, False)
        xr = x.detach().double().requires_grad_(True)
        outr = freqalign.freq_pool(xr, freqs, grouped=False)
        (gr,) = torch.autograd.grad(outr.square().sum(), xr, create_graph=True)
        (gr2,) = torch.autograd.grad(gr.sum(), xr)
    rel = relative_error(49 + 2, torch.float32, [(2, 2.0 ** -24), (2, TF32X3)]) + \
        relative_error(49 + 2, torch.float64, [(2, 2.0 ** -53)])  # the float64 reference's own
    assert ((grad2.double() - gr2).abs() <= rel * magnitude).all()
