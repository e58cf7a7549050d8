"""The fused multi-spectral attention op (``freqalign.ops.fused_attention``) on the CPU backends
(torch reference and C++): float64 reference within derived bounds (tests/attention_checks.py),
gradcheck, torch.compile, autocast, layouts, what autograd saves, bad inputs. The layer against
FcaNet's own formulation: tests/test_attention.py. The Triton passes run here under the
interpreter (``test_interpreter_run``); the CUDA cases are in tests/test_cuda.py.
"""
import importlib.util

import pytest
import torch

import freqalign
from attention_checks import check_ms_attention, make_case, run_op
from freqalign import MultiSpectralAttention
from freqalign.ops import ms_attention
from interpreter import IN_INTERPRETER, interpreted, run_interpreter_tests

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# (37, 12, 7, 7) and (5, 12, 3, 3): plane counts that leave remainders after blocks of 4 or 8 planes,
# split across threads, and planes just over a vector (the cpu kernels' tail paths)
SHAPES = [(2, 16, 7, 7), (3, 8, 5, 9), (2, 4, 1, 1), (1, 32, 14, 14), (37, 12, 7, 7), (5, 12, 3, 3)]


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(backend_name, shape, dtype):
    check_ms_attention(shape, dtype, "cpu")


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("how", ["channels_last", "sliced", "sliced_channels_last"])
def test_layouts(backend_name, how, dtype):
    fmt = torch.channels_last if "channels_last" in how else torch.contiguous_format
    check_ms_attention((2, 16, 6, 5), dtype, "cpu", fmt=fmt, sliced="sliced" in how)


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
def test_gradcheck(backend_name):
    x, _, w1, w2, freqs = make_case((2, 8, 5, 6), torch.float64, "cpu", seed=3)
    args = tuple(t.double().requires_grad_(True) for t in (x, w1, w2))
    assert torch.autograd.gradcheck(lambda a, b, c: ms_attention(a, freqs, b, c), args)


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
def test_empty_batch(backend_name):
    x, g, w1, w2, freqs = make_case((0, 8, 4, 4), torch.float32, "cpu")
    y, gx, gw1, gw2 = run_op(x, g, w1, w2, freqs)
    assert y.shape == x.shape and gx.shape == x.shape and not gw1.any() and not gw2.any()


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
def test_saves_only_x_and_small_tensors(backend_name):
    """Autograd keeps x and (B, C)-sized tensors: no (B, C, H, W) intermediate."""
    layer = MultiSpectralAttention(32, reduction=4, freqs="low4")
    x = torch.randn(2, 32, 7, 7, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x).sum().backward()
    big = [t for t in saved if t.dim() == 4]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr(), [tuple(t.shape) for t in saved]


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=str)
def test_torch_compile_fullgraph(backend_name, fmt):
    """The compiled layer (fullgraph: the op is one node) equals the eager one, forward and backward,
    and the fake kernel promises the real output's layout."""
    torch._dynamo.reset()
    layer = MultiSpectralAttention(32, reduction=4, freqs="top16").double()
    x = torch.randn(2, 32, 14, 14, dtype=torch.float64).contiguous(memory_format=fmt)
    outs = []
    for fn in (layer, torch.compile(layer, fullgraph=True)):
        leaf = x.clone().requires_grad_(True)
        y = fn(leaf)
        outs.append((y, *torch.autograd.grad(y, [leaf, layer.fc[0].weight], torch.ones_like(y))))
    for eager, compiled in zip(*outs):
        torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12)
    assert outs[1][0].stride() == outs[0][0].stride()


@pytest.mark.skipif(IN_INTERPRETER, reason="the interpreter run takes the triton tests only")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_autocast_keeps_the_input_dtype_and_precision(backend_name, dtype):
    """Under bf16 autocast the op runs as without it: x's dtype out, bit-identical values."""
    x, g, w1, w2, freqs = make_case((2, 16, 7, 7), dtype, "cpu")
    plain = run_op(x, g, w1, w2, freqs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = run_op(x, g, w1, w2, freqs)
    for a, b in zip(plain, cast):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_bad_inputs_are_clear_errors():
    x = torch.randn(2, 8, 5, 5)
    w1, w2 = torch.randn(2, 8), torch.randn(8, 2)
    with pytest.raises(TypeError, match="floating-point"):
        ms_attention(x.long(), [(0, 0)], w1, w2)
    with pytest.raises(ValueError, match="4 dimensions"):
        ms_attention(x[0], [(0, 0)], w1, w2)
    with pytest.raises(ValueError, match=r"w1 must be \(hidden, C\)"):
        ms_attention(x, [(0, 0)], w1.T, w2)
    with pytest.raises(ValueError, match="equal groups"):
        ms_attention(x, [(0, 0), (1, 1), (2, 2)], w1, w2)
    with pytest.raises(ValueError, match="out of range"):
        ms_attention(x, [(5, 0)], w1, w2)
    if "cpu" in freqalign.backends() and freqalign.backends()["cpu"] == "available":
        filters = torch.randn(1, 5, 5, dtype=torch.float64)
        with pytest.raises(RuntimeError, match="filters must have dtype"):
            torch.ops.freqalign.ms_attention(x, filters, w1, w2)
        with pytest.raises(RuntimeError, match="K must divide C"):
            torch.ops.freqalign.ms_attention(x, torch.randn(3, 5, 5), w1, w2)


# -- Triton, under the interpreter ----------------------------------------------------------------

@pytest.mark.skipif(IN_INTERPRETER, reason="this process is the interpreter run")
def test_interpreter_run():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    run_interpreter_tests(__file__, "triton")


@interpreted
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last], ids=str)
@pytest.mark.parametrize("shape", [(2, 16, 7, 7), (3, 8, 5, 9), (2, 4, 1, 1)], ids=str)
def test_triton_matches_reference(shape, fmt, dtype):
    with freqalign.use_backend("triton"):
        check_ms_attention(shape, dtype, "cpu", fmt=fmt, truncates=True)


@interpreted
def test_triton_sliced_input():
    with freqalign.use_backend("triton"):
        check_ms_attention((2, 16, 6, 5), torch.float32, "cpu", sliced=True)
