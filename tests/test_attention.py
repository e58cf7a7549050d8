"""MultiSpectralAttention and add_attention against an independent eager restatement of FcaNet's
layer (benchmarks/lib/fcanet_reference.py), in float64.

Tolerances are first-order worst-case rounding bounds (``attention_bounds``), never fitted.
"""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from benchmarks.lib.fcanet_reference import FCANET_STAGE_SIZES, TABLES, from_attention, table
from freqalign import MultiSpectralAttention, add_attention, grid_to_index
from freqalign.nn import UnsupportedModelError, fcanet_frequencies
from freqalign.surgery import AttentionBasicBlock, AttentionBottleneck
from numerics import UNIT_ROUNDOFF, gamma, randn

U = UNIT_ROUNDOFF[torch.float64]


def G(n):
    return gamma(n, U)


def _np(t):
    return t.detach().double().numpy()


def attention_bounds(x, g, eager, adaptive=False):
    """Worst-case bounds on |freqalign - FcaNet| for the forward output, grad x, grad W1, grad W2.

    Both sides compute, in float64, ``p = sum_hw x B`` (HW terms; each side's basis entries err
    by <= 16 N u, a cosine of an argument < pi N with 4 roundings), ``z = W1 p`` (C terms),
    ``r = relu(z)``, ``q = W2 r`` (C/r terms), ``s = sigmoid(q)`` (<= 4 ulps; slope <= 1/4) and
    ``x * s``; the backward is the chain rule over the same sums. Each side's error is bounded
    with magnitudes (Higham ch. 3: an n-term sum errs by gamma(n) sum |terms|) and propagated to
    first order; the difference of two sides is at most twice that. The neglected second-order
    terms are ~1e-16 of these, so the bound is scaled by 1 + 2^-20. ``adaptive``: the squeeze
    first averages x to the DCT size, the same torch op on both sides (identical bits forward;
    backward, a non-negative linear map applied to the bound, plus its own 4-term rounding).
    """
    with torch.no_grad():
        squeezed = F.adaptive_avg_pool2d(x, eager.weight.shape[-2:]) if adaptive else x
    xs, xa, ga = _np(squeezed), np.abs(_np(x)), np.abs(_np(g))
    bank = _np(eager.weight)  # (C, H, W): the exact basis up to 16 N u per entry
    w1, w2 = _np(eager.fc[0].weight), _np(eager.fc[2].weight)
    hw, n = bank.shape[1] * bank.shape[2], max(bank.shape[1:])
    db = 16 * n * U
    p = (xs * bank).sum((2, 3))
    z = p @ w1.T
    r = np.maximum(z, 0)
    q = r @ w2.T
    s = 1 / (1 + np.exp(-q))
    xsa = np.abs(xs)
    dp = 2 * (G(hw) * (xsa * np.abs(bank)).sum((2, 3)) + db * xsa.sum((2, 3)))
    dz = np.abs(w1) @ dp.T
    dz = dz.T + 2 * G(w1.shape[1]) * (np.abs(p) @ np.abs(w1).T)
    assert (dz < np.abs(z)).all(), "a ReLU could flip within the bound: pick another seed"
    dq = dz @ np.abs(w2).T + 2 * G(w2.shape[1]) * (r @ np.abs(w2).T)
    ds = dq / 4 + 2 * 4 * U * s
    out = _np(x) * s[:, :, None, None]
    d_out = xa * ds[:, :, None, None] + 2 * U * np.abs(out)
    # backward, upstream gradient g (exact and equal on both sides)
    xg = _np(g) * _np(x)
    gs = xg.sum((2, 3))
    dgs = 2 * G(x.shape[2] * x.shape[3]) * np.abs(xg).sum((2, 3))
    gq = gs * s * (1 - s)
    dgq = dgs * s * (1 - s) + np.abs(gs) * ds + 2 * 3 * U * np.abs(gq)
    gz = (gq @ w2) * (z > 0)
    dgz = (dgq @ np.abs(w2) + 2 * G(w2.shape[0]) * (np.abs(gq) @ np.abs(w2))) * (z > 0)
    gp = gz @ w1
    dgp = dgz @ np.abs(w1) + 2 * G(w1.shape[0]) * (np.abs(gz) @ np.abs(w1))
    d_through_pool = (dgp[:, :, None, None] * np.abs(bank) + np.abs(gp)[:, :, None, None] * 2 * db
                      + 2 * U * np.abs(gp[:, :, None, None] * bank))
    if adaptive:  # the pooling's backward is linear with non-negative weights: apply it to the bound
        area = int(np.ceil(x.shape[2] / bank.shape[1]) + 1) * int(np.ceil(x.shape[3] / bank.shape[2]) + 1)
        magnitude = np.abs(gp[:, :, None, None] * bank) * (1 + 2 * G(area))
        d_through_pool = _adaptive_backward(x, d_through_pool + 2 * G(area) * magnitude)
    scaled = np.abs(_np(g) * s[:, :, None, None])  # g * s: one rounding, then the sum with the pool part
    pool_part = np.abs(gp[:, :, None, None] * bank)
    if adaptive:
        pool_part = _adaptive_backward(x, pool_part) * (1 + 2 * G(area))
    d_gx = ga * ds[:, :, None, None] + 2 * U * scaled + d_through_pool + 2 * U * (scaled + pool_part)
    batch = x.shape[0]
    d_gw2 = dgq.T @ np.abs(r) + np.abs(gq).T @ (dz.clip(min=0) * (z > 0)) + 2 * G(batch) * (np.abs(gq).T @ r)
    d_gw1 = dgz.T @ np.abs(p) + np.abs(gz).T @ dp + 2 * G(batch) * (np.abs(gz).T @ np.abs(p))
    scale = 1 + 2.0 ** -20
    return [b * scale for b in (d_out, d_gx, d_gw1, d_gw2)]


def _adaptive_backward(x, bound):
    """Apply the adjoint of adaptive_avg_pool2d(x -> DCT size) to a non-negative array."""
    probe = torch.zeros_like(x, requires_grad=True)
    pooled = F.adaptive_avg_pool2d(probe, bound.shape[-2:])
    return _np(torch.autograd.grad(pooled, probe, torch.from_numpy(bound))[0])


def run(layer, x, g):
    """Output and gradients (x, W1, W2) of ``layer`` at ``x`` for upstream gradient ``g``."""
    x = x.clone().requires_grad_(True)
    out = layer(x)
    grads = torch.autograd.grad(out, [x, layer.fc[0].weight, layer.fc[2].weight], g)
    return [out, *grads]


def assert_within(got, want, limit, what):
    got, want = _np(got), _np(want)
    ratio = np.abs(got - want) / np.maximum(limit, np.finfo(np.float64).tiny)
    assert np.isfinite(got).all() and ratio.max() <= 1.0, (
        f"{what}: worst error is {ratio.max():.2f}x its bound")


def compare(att, eager, x, g, adaptive=False):
    bounds = attention_bounds(x, g, eager, adaptive=adaptive)
    for got, want, limit, what in zip(run(att, x, g), run(eager, x, g), bounds,
                                      ("output", "grad x", "grad W1", "grad W2")):
        assert_within(got, want, limit, what)


# -- tables ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["top", "low", "bot"])
def test_fcanet_tables(kind):
    """Every named choice equals FcaNet's published (rows, cols) lists, typed separately."""
    for count in (1, 2, 4, 8, 16, 32):
        rows, cols = table(f"{kind}{count}")
        assert fcanet_frequencies(f"{kind}{count}") == tuple(zip(rows, cols))
    assert len(set(zip(*TABLES[kind]))) == 32


@pytest.mark.parametrize("bad", ["top3", "mid16", "top", "top64", "16"])
def test_unknown_table_names_are_clear_errors(bad):
    with pytest.raises(ValueError, match="unknown FcaNet frequency choice"):
        MultiSpectralAttention(64, freqs=bad)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="must divide channels"):
        MultiSpectralAttention(40, freqs="top16")
    with pytest.raises(ValueError, match="no hidden units"):
        MultiSpectralAttention(16, reduction=32, freqs="top4")
    with pytest.raises(ValueError, match="7x7 grid"):
        MultiSpectralAttention(64, freqs="top16", grid=14)
    with pytest.raises(ValueError, match="smaller than the grid"):  # top16 on a 4x4 map collapses
        MultiSpectralAttention(64)(torch.zeros(1, 64, 4, 4))


# -- the layer against FcaNet's formulation --------------------------------------------------------

@pytest.mark.parametrize("size", [(7, 7), (14, 14), (56, 56)])
@pytest.mark.parametrize("method", ["top16", "low4", "bot32"])
def test_attention_equals_fcanet(backend_name, size, method):
    """At FcaNet's own DCT sizes (multiples of 7) its mapping u * (H // 7) is freqalign's
    u * H // 7: same frequencies, so the layers agree forward and backward within the bound."""
    att = MultiSpectralAttention(64, reduction=4, freqs=method).double()
    eager = from_attention(att, *size, method=method)
    x, g = randn(3, 64, *size, seed=1), randn(3, 64, *size, seed=2)
    compare(att, eager, x, g)


def test_attention_at_an_odd_size_pools_at_the_mapped_frequencies(backend_name):
    """Off FcaNet's sizes the grid frequency (u, v) goes to (u * H // 7, v * W // 7) (FcaNet's own
    layer would average-pool to its DCT size first): equal to FcaNet's formulation with its filter
    bank built at those indices."""
    att = MultiSpectralAttention(64, reduction=8, freqs="top16").double()
    indices = grid_to_index(fcanet_frequencies("top16"), 9, 11, 7)
    eager = from_attention(att, 9, 11, indices=indices)
    compare(att, eager, randn(2, 64, 9, 11, seed=3), randn(2, 64, 9, 11, seed=4))


@pytest.mark.parametrize("size", [(13, 13), (4, 5)])
def test_pool_size_reproduces_fcanet_at_any_input_size(backend_name, size):
    """pool_size=7 averages to 7 x 7 first, as FcaNet's layer with dct_h = dct_w = 7 does (also on
    maps smaller than the grid, where the native mode refuses)."""
    att = MultiSpectralAttention(32, reduction=4, freqs="top16", pool_size=7).double()
    eager = from_attention(att, 7, 7)
    compare(att, eager, randn(2, 32, *size, seed=5), randn(2, 32, *size, seed=6), adaptive=True)


def test_gradcheck(backend_name):
    """Analytic gradients against finite differences (x and both FC weights), at an odd size."""
    att = MultiSpectralAttention(16, reduction=4, freqs="low4").double()
    x = randn(2, 16, 9, 7, seed=7).requires_grad_(True)
    w1, w2 = att.fc[0].weight, att.fc[2].weight

    def layer(x, a, b):
        pooled = att.pool(x)
        return x * torch.sigmoid(F.relu(pooled @ a.T) @ b.T)[:, :, None, None]

    assert torch.autograd.gradcheck(layer, (x, w1, w2), fast_mode=True)


def test_state_dict_has_fcanet_names_and_no_bases():
    assert set(MultiSpectralAttention(64).state_dict()) == {"fc.0.weight", "fc.2.weight"}


# -- add_attention ----------------------------------------------------------------------------------

def _attention_inputs(model, images):
    """(name, layer, input) of every attention layer in one forward of ``model``."""
    captured, handles = [], []
    for name, module in model.named_modules():
        if isinstance(module, MultiSpectralAttention):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: captured.append((name, m, i[0]))))
    with torch.no_grad():
        logits = model(images)
    for handle in handles:
        handle.remove()
    return logits, captured


def _stage(name):
    return int(name.split(".")[0][len("layer"):]) - 1


def test_add_attention_resnet18_is_fcanet_at_224(backend_name):
    """FcaNet-ResNet-18 at 224 x 224 (stages 56, 28, 14, 7 = FcaNet's DCT sizes): every block's
    attention equals FcaNet's layer on the same input, forward and backward, within the bound."""
    torch.manual_seed(0)
    model = add_attention(torchvision.models.resnet18(weights=None, num_classes=10)).double().eval()
    logits, captured = _attention_inputs(model, randn(1, 3, 224, 224, seed=8))
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()
    assert len(captured) == 8
    for index, (name, att, x) in enumerate(captured):
        size = FCANET_STAGE_SIZES[_stage(name)]
        assert x.shape[-1] == size, name
        compare(att, from_attention(att, size, size), x, randn(*x.shape, seed=100 + index))


def test_add_attention_fcanet_pool_sizes_on_small_inputs(backend_name):
    """pool_sizes="fcanet" averages each stage to FcaNet's 56 / 28 / 14 / 7 first, so a 64 x 64
    input (stages 16 .. 2, too small for top16 at native size) works and equals FcaNet."""
    torch.manual_seed(0)
    model = add_attention(torchvision.models.resnet18(weights=None, num_classes=10),
                          pool_sizes="fcanet").double().eval()
    logits, captured = _attention_inputs(model, randn(2, 3, 64, 64, seed=9))
    assert logits.shape == (2, 10) and len(captured) == 8
    for index, (name, att, x) in enumerate(captured[::3]):
        size = FCANET_STAGE_SIZES[_stage(name)]
        compare(att, from_attention(att, size, size), x, randn(*x.shape, seed=200 + index), adaptive=True)
    with pytest.raises(ValueError, match="smaller than the grid"):
        add_attention(torchvision.models.resnet18(weights=None))(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
def test_attention_blocks_restate_torchvision_blocks(kind):
    """With the attention an identity, the new block is torchvision's block, bit for bit, and
    keeps its parameter names (FcaNet's, plus att.*)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck

    torch.manual_seed(0)
    downsample = nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False), nn.BatchNorm2d(64))
    block = (BasicBlock(32, 64, stride=2, downsample=downsample) if kind == "basic"
             else Bottleneck(32, 16, stride=2, downsample=downsample)).eval()
    wrapped = (AttentionBasicBlock if kind == "basic" else AttentionBottleneck)(block, nn.Identity()).eval()
    x = randn(2, 32, 10, 10, seed=10, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(wrapped(x), block(x))
    assert set(wrapped.state_dict()) == set(block.state_dict())


def test_add_attention_keys_device_and_errors():
    model = add_attention(torchvision.models.resnet50(weights=None), reduction=16)
    keys = set(model.state_dict())
    assert "layer1.0.att.fc.0.weight" in keys and "layer4.2.att.fc.2.weight" in keys
    assert model.layer1[0].att.fc[0].weight.shape == (256 // 16, 256)
    assert model.layer4[0].att.fc[2].weight.shape == (2048, 2048 // 16)
    with pytest.raises(UnsupportedModelError, match="already has attention"):
        add_attention(model)
    with pytest.raises(UnsupportedModelError, match="expects a torchvision ResNet"):
        add_attention(torchvision.models.mobilenet_v3_small(weights=None))
    with pytest.raises(ValueError, match="pool_sizes"):
        add_attention(torchvision.models.resnet18(weights=None), pool_sizes="native")
