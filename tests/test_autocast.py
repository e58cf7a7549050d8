"""The autocast policy (docs/design.md section 2) on the CPU backends, eager and compiled.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` every op (dct2d, idct2d, freq_pool grouped
and ungrouped) returns the dtype its fake kernel promises, which is the input's own: fp32 is
computed and returned in fp32, fp16/bf16 in their own dtype with fp32 accumulation. The
error against float64 must stay within the worst-case bound of that computation
(``numerics``): autocast lowering an fp32 computation to bf16 (relative error ~4e-3) would
miss it by three orders of magnitude. The same checks run on a GPU in tests/test_cuda.py (CUDA
autocast, fp16 and bf16) and on the Triton interpreter in tests/test_triton.py.
"""
import pytest
import torch

from kernel_checks import autocast_ops, check_autocast, check_autocast_backward, make_input

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SIZES = [(7, 7), (14, 13)]


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_forward_under_cpu_autocast(backend_name, size, dtype):
    check_autocast(make_input((2, 6, *size), dtype, "cpu", seed=11), torch.bfloat16, backend_name)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_backward_inside_cpu_autocast(backend_name, dtype):
    check_autocast_backward(make_input((2, 6, 14, 13), dtype, "cpu", seed=12), torch.bfloat16, backend_name)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_compiled_under_cpu_autocast(backend_name, dtype):
    """torch.compile(fullgraph=True) keeps the policy: the same dtypes and bounds as eager."""
    torch._dynamo.reset()
    compiled = torch.compile(autocast_ops, fullgraph=True)
    check_autocast(make_input((2, 6, 14, 13), dtype, "cpu", seed=13), torch.bfloat16, backend_name, run=compiled)


def test_kernel_ops_keep_fp32_under_autocast():
    """The registered ops themselves (not only the public wrappers) run with autocast off: the cpu
    backend's ungrouped pooling is a BLAS matmul, which autocast would otherwise lower to bf16."""
    from freqalign import backend
    from freqalign.basis import pool_filters

    if backend.load("cpu") is None:
        pytest.skip("freqalign._C (the cpu backend) is not built")
    x = make_input((2, 6, 14, 13), torch.float32, "cpu", seed=14)
    filters = pool_filters([(0, 0), (3, 4)], 14, 13, "ortho", torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.ops.freqalign.pool_forward(x, filters, False)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.ops.freqalign.pool_forward(x, filters, False), rtol=0, atol=0)
