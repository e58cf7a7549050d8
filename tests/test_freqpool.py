"""FreqPool: a drop-in for global average pooling, windows, compile and torchvision models.

Tolerances are worst-case rounding bounds (tests/numerics.py), never fitted to one machine.
"""
import pytest
import torch
import torchvision
from torch import nn

from freqalign import FreqPool, freq_pool, grid_to_index, window
from kernel_checks import check_pool_backward, check_pool_forward
from numerics import UNIT_ROUNDOFF, gamma, mean_difference_bound, randn, relative_error

U32 = UNIT_ROUNDOFF[torch.float32]


def gap(x):
    return nn.AdaptiveAvgPool2d(1)(x).flatten(1)


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (13, 9), (56, 56)])
def test_default_freqpool_equals_gap(backend_name, size):
    """Equal up to rounding (``numerics.mean_difference_bound``; the old fixed 1e-6 failed at
    56x56 on another machine's BLAS), for post-ReLU-like and signed features."""
    n = size[0] * size[1]
    positive = randn(4, 12, *size, seed=1, dtype=torch.float32).abs() * 5
    signed = randn(4, 12, *size, seed=2, dtype=torch.float32) * 3 + 1
    for x in (positive, signed):
        limit = mean_difference_bound(n) * x.double().abs().mean((2, 3))
        assert ((FreqPool()(x).double() - gap(x).double()).abs() <= limit).all()


def test_set_window_pools_at_mapped_frequencies(backend_name):
    """The layer is freq_pool at the window's mapped indices: the same computation, bit for bit."""
    pool = FreqPool(norm="ortho").set_window(3, 4)
    x = randn(2, 8, 14, 14, seed=3)
    assert torch.equal(pool(x), freq_pool(x, grid_to_index(window(3, 4), 14, 14), grouped=True))
    assert "window=(position=3, size=4)" in repr(pool) and "grid=7" in repr(pool)


def test_freqpool_keeps_no_state():
    pool = FreqPool().set_window(0, 4)
    assert pool.state_dict() == {} and list(pool.parameters()) == []


def test_resnet18_with_freqpool_gives_the_same_logits(backend_name):
    """Only the pooling changes, and per channel c it moves by at most
    ``mean_difference_bound(9) * mean|f_c|`` (a 3x3 map at 96x96 input); the fc layer carries that
    through ``|W|`` and rounds each side's 513-term sums by at most ``gamma(513) (|W| |p| + |b|)``."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    images = randn(2, 3, 96, 96, seed=4, dtype=torch.float32)
    features = {}
    model.avgpool.register_forward_hook(lambda module, inputs, output: features.update(f=inputs[0]))
    with torch.no_grad():
        expected = model(images)
        model.avgpool = nn.Sequential(FreqPool(), nn.Unflatten(1, (-1, 1, 1)))
        got = model(images)
    f = features["f"].double()
    n = f.shape[-2] * f.shape[-1]
    weight, bias = model.fc.weight.double().abs(), model.fc.bias.double().abs()
    moved = mean_difference_bound(n) * f.abs().mean((2, 3))
    pooled = f.abs().mean((2, 3)) + moved
    limit = moved @ weight.T + 2 * gamma(f.shape[1] + 1, U32) * (pooled @ weight.T + bias)
    assert ((got.double() - expected.double()).abs() <= limit).all()


def test_a_first_call_inside_torch_compile_works():
    """A fresh process whose first freqalign op runs inside torch.compile(fullgraph=True):
    loading a backend registers fake kernels and autograd, which dynamo cannot trace, so
    ``import freqalign`` loads the backends ``auto`` can pick. The pooled value is the mean of
    49 fp32 numbers, within ``mean_difference_bound(49)`` of the float64 mean."""
    import subprocess
    import sys

    code = ("import torch, freqalign\n"
            "x = torch.rand(2, 3, 7, 7, generator=torch.Generator().manual_seed(0))\n"
            "got = torch.compile(freqalign.FreqPool(), fullgraph=True)(x)\n"
            "print(((got.double() - x.double().mean((2, 3))).abs() / x.double().abs().mean((2, 3))).max().item())\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) <= mean_difference_bound(49)


def test_torch_compile_fullgraph_keeps_the_bounds(backend_name):
    """A FreqPool window + linear head under torch.compile(fullgraph=True): the pooled features,
    the head's output and the input gradient lie within their fp32 bounds, eager and compiled.

    Pooling: ``check_pool_forward``/``check_pool_backward``. Head ``out = p @ w + b`` on the
    computed ``p``: its error through ``|w|`` plus the head's own rounding (9 terms, ``w`` and
    ``b`` rounded to fp32). Gradient: the head's is fp32 ``w`` exactly, so the input gradient is
    a pool backward of it.
    """
    positions = grid_to_index(window(2, 4), 14, 14)
    pool = FreqPool(norm="ortho").set_window(2, 4)
    w, b = randn(8, seed=6), randn(1, seed=7)
    head_error = relative_error(9, torch.float32, [(1, U32)])

    def net(x):
        p = pool(x)
        return p, p @ w.float() + b.float()

    x = randn(3, 8, 14, 14, seed=5, dtype=torch.float32)
    torch._dynamo.reset()
    for run in (net, torch.compile(net, fullgraph=True)):
        leaf = x.clone().requires_grad_(True)
        p, out = run(leaf)
        check_pool_forward(p, x, positions, True, "ortho", backend_name, "pooled features")
        (grad,) = torch.autograd.grad(out.sum(), leaf)
        check_pool_backward(grad, w.float().expand(3, 8), positions, True, "ortho", backend_name, "input grad")
        p64, exact = p.detach().double(), freq_pool(x.double(), positions, grouped=True)
        limit = (p64 - exact).abs() @ w.abs() + head_error * (p64.abs() @ w.abs() + b.abs())
        assert ((out.detach().double() - (exact @ w + b)).abs() <= limit).all()
