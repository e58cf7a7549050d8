"""Every export path a plain PyTorch model has (issue 24): ``torch.jit.trace``, ``torch.export``
with dynamic height and width (and ``run_decompositions``), ``torch.onnx.export`` with and
without dynamo, run in onnxruntime. Each graph is captured at one size and run at two.

The layers are checked in float64 against the derived worst-case rounding bounds of
tests/test_attention.py (``attention_bounds``) and ``pool_bound`` below. Whole ResNet-18 models
run in float32 (as deployed), where a worst-case bound through 18 convolutions would be
meaningless: there the exported model must stay within a few times the eager model's own
float32 error, measured against its float64 run (slow tests).
"""
import copy
import math

import numpy as np
import pytest
import torch
import torchvision
from torch.utils._python_dispatch import TorchDispatchMode

import freqalign
from benchmarks.lib.fcanet_reference import filter_bank, from_attention
from freqalign import FreqPool, MultiSpectralAttention, add_attention, grid_to_index, replace_gap
from freqalign.nn import fcanet_frequencies
from numerics import UNIT_ROUNDOFF, gamma, randn
from test_attention import attention_bounds

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # the dynamo exporter's dependency

U = UNIT_ROUNDOFF[torch.float64]
PATHS = ["jit_trace", "export", "onnx", "onnx_dynamo"]


# -- capture at one size, return a callable that runs any size ----------------------------------

def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_onnx(session):
    def run(x):
        return torch.from_numpy(session.run(None, {"x": x.detach().numpy()})[0])

    return run


def _dims(min_size):
    return ({2: torch.export.Dim("height", min=min_size, max=1024),
             3: torch.export.Dim("width", min=min_size, max=1024)},)


def capture(model, x, path, tmp_path, min_size):
    """``model`` captured by ``path`` at example ``x``, as a callable on (B, C, H, W) tensors."""
    if path == "jit_trace":
        return torch.jit.trace(model, x)
    if path == "export":
        return torch.export.export(model, (x,), dynamic_shapes=_dims(min_size)).run_decompositions().module()
    file = tmp_path / f"{path}.onnx"
    if path == "onnx":
        torch.onnx.export(model, (x,), str(file), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {2: "height", 3: "width"}})
    else:
        torch.onnx.export(model, (x,), dynamo=True, input_names=["x"],
                          dynamic_shapes=_dims(min_size)).save(str(file))
    return _run_onnx(_session(file))


def _no_freqalign_ops(captured, path):
    """No freqalign op is left in the graph: it runs without freqalign."""
    if path == "jit_trace":
        assert "freqalign::" not in str(captured.inlined_graph)
    elif path == "export":
        assert "freqalign" not in captured.code


# -- layers, float64, derived bounds -------------------------------------------------------------

def pool_bound(x, bank):
    """Worst case of |a - b| for two float64 poolings ``sum_hw x * bank`` (bank (C, H, W), one
    filter per channel): each side's HW-term sum errs by gamma(HW) sum |x bank| and its basis
    entries by 16 N u (a cosine of an argument < pi N with 4 roundings), so twice that."""
    xa = np.abs(x.numpy())
    hw, n = bank.shape[1] * bank.shape[2], max(bank.shape[1:])
    one_side = gamma(hw, U) * (xa * np.abs(bank)).sum((2, 3)) + 16 * n * U * xa.sum((2, 3))
    return 2 * one_side * (1 + 2.0 ** -20)


def _bank(pool, channels, height, width):
    """The float64 (C, H, W) filter of each channel of grouped ``pool`` at this size."""
    indices = grid_to_index(pool.freqs, height, width, pool.grid)
    bank = filter_bank(channels, height, width, [u for u, _ in indices], [v for _, v in indices])
    return bank / math.sqrt(height * width) if pool.norm == "mean" else bank


def _assert_within(got, want, limit, what):
    error = np.abs(got.detach().numpy() - want.detach().numpy())
    assert got.shape == want.shape and np.isfinite(error).all(), what
    assert (error <= limit).all(), f"{what}: worst error is {(error / limit).max():.2f}x its bound"


SIZES = [(14, 14), (9, 11)]  # captured at the first, run at both: not multiples of one another


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("norm", ["mean", "ortho"])
def test_freq_pool_layer(path, norm, tmp_path):
    """FreqPool (FcaNet's top16, grouped) exported at 14 x 14 pools at 9 x 11 where eager does."""
    pool = FreqPool(fcanet_frequencies("top16"), norm=norm).eval()
    inputs = [randn(2, 32, *size, seed=i) for i, size in enumerate(SIZES)]
    captured = capture(pool, inputs[0], path, tmp_path, min_size=7)
    _no_freqalign_ops(captured, path)
    for x in inputs:
        bound = pool_bound(x, _bank(pool, 32, *x.shape[-2:]))
        _assert_within(captured(x), pool(x), bound, f"{path} at {tuple(x.shape[-2:])}")


@pytest.mark.parametrize("path", PATHS)
def test_attention_layer(path, tmp_path):
    """MultiSpectralAttention (top16) exported at 14 x 14 equals eager at 14 x 14 and 9 x 11."""
    torch.manual_seed(0)
    att = MultiSpectralAttention(32, reduction=4, freqs="top16").double().eval()
    inputs = [randn(2, 32, *size, seed=10 + i) for i, size in enumerate(SIZES)]
    captured = capture(att, inputs[0], path, tmp_path, min_size=7)
    _no_freqalign_ops(captured, path)
    for x in inputs:
        height, width = x.shape[-2:]
        fcanet = from_attention(att, height, width, indices=grid_to_index(att.pool.freqs, height, width))
        bound = attention_bounds(x, torch.ones_like(x), fcanet)[0]
        _assert_within(captured(x), att(x), bound, f"{path} at {(height, width)}")


@pytest.mark.parametrize("path", ["jit_trace", "export"])
def test_attention_with_a_pool_size(path, tmp_path):
    """pool_size=7 (add_attention(pool_sizes="fcanet")): captured at 7 x 7, where eager skips the
    average pooling, the graph still pools at 14 x 14 and 9 x 11 as eager does."""
    torch.manual_seed(0)
    att = MultiSpectralAttention(32, reduction=4, freqs="top16", pool_size=7).double().eval()
    inputs = [randn(2, 32, *size, seed=30 + i) for i, size in enumerate([(7, 7), *SIZES])]
    captured = capture(att, inputs[0], path, tmp_path, min_size=7)
    for x in inputs:
        bound = attention_bounds(x, torch.ones_like(x), from_attention(att, 7, 7), adaptive=True)[0]
        _assert_within(captured(x), att(x), bound, f"{path} at {tuple(x.shape[-2:])}")


def test_ops_export_as_plain_torch():
    """The public ops inside a model: torch.export leaves no freqalign op, and the graph equals
    eager (same float64 formulation up to the kernels' summation order: ~1e-15 of 1)."""
    class Model(torch.nn.Module):
        def forward(self, x):
            coefficients = freqalign.idct2d(freqalign.dct2d(x))
            return freqalign.freq_pool(coefficients, [(0, 0), (2, 3)], grouped=False)

    x = randn(2, 4, 8, 8, seed=3)
    exported = torch.export.export(Model(), (x,)).run_decompositions()
    assert "freqalign" not in exported.module().code
    torch.testing.assert_close(exported.module()(x), Model()(x), rtol=0, atol=1e-13)


class _OpNames(TorchDispatchMode):
    """Records the name of every op dispatched below it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func))
        return func(*args, **(kwargs or {}))


def test_eager_calls_still_run_the_kernels(backend_name):
    """Capturing is the only switch: eager layers run the backend's kernel ops, not the plain
    formulation."""
    x = randn(2, 32, 7, 7, seed=4, dtype=torch.float32)
    layers = (FreqPool(fcanet_frequencies("top16")), MultiSpectralAttention(32, reduction=4))
    for layer, op in zip(layers, ("pool_forward", "ms_attention")):
        with _OpNames() as seen:
            layer(x)
        prefix = "" if backend_name == "cpu" else f"{backend_name}_"
        assert f"freqalign.{prefix}{op}.default" in seen.names, (type(layer).__name__, seen.names)


# -- whole models, float32 -------------------------------------------------------------------------

MODELS = {
    "replace_gap": lambda: replace_gap(torchvision.models.resnet18(weights=None)),
    "replace_gap_top16": lambda: replace_gap(torchvision.models.resnet18(weights=None), freqs="top16"),
    "add_attention": lambda: add_attention(torchvision.models.resnet18(weights=None)),
}
MODEL_SIZES = [(224, 224), (256, 320)]  # the last stage is 7 x 7, then 8 x 10
ERROR_FACTOR = 8  # times the eager model's own float32 error; a wrong basis or size errs by ~1e-2 of 1


@pytest.fixture(scope="module", params=sorted(MODELS))
def model_case(request):
    """(name, float32 model, inputs, eager float32 outputs, allowed difference)."""
    torch.manual_seed(0)
    model = MODELS[request.param]().eval()
    exact = copy.deepcopy(model).double()
    inputs = [randn(2, 3, *size, seed=20 + i) for i, size in enumerate(MODEL_SIZES)]
    with torch.no_grad():
        eager = [model(x.float()) for x in inputs]
        own_error = max((e.double() - exact(x)).abs().max().item() for e, x in zip(eager, inputs))
    return request.param, model, [x.float() for x in inputs], eager, ERROR_FACTOR * own_error


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
def test_resnet18_exports(model_case, path, tmp_path):
    """replace_gap / add_attention ResNet-18 captured at 224 x 224 runs at 256 x 320 as eager does."""
    name, model, inputs, eager, allowed = model_case
    captured = capture(model, inputs[0], path, tmp_path, min_size=224)
    _no_freqalign_ops(captured, path)
    with torch.no_grad():
        for x, want in zip(inputs, eager):
            difference = (captured(x) - want).abs().max().item()
            assert difference <= allowed, f"{name} {path} at {tuple(x.shape[-2:])}: {difference:.2e} > {allowed:.2e}"
