"""replace_gap on torchvision classifiers: at the default frequency the logits stay the same.

Each model runs in float64 (random weights, eval mode, 2 x 3 x 96 x 96 input, 3 x 3 final
maps), once as built and once after ``replace_gap``. Only the pooled features change, per
channel by at most ``b = mean_bound(n) * mean|f|`` (two float64 means of the same n values);
the logits then move by at most ``|J| b``, J the head's Jacobian at the pooled features (first
order: b is ~1e-15 relative, its square negligible), plus each side's own rounding of the head
(T = its summed fan-ins): ``gamma(T) (|J| |p| + |logits|)`` per side. That last term is the
backward-error bound of a linear head (ResNet, RegNet, EfficientNet, MobileNetV2: [dropout +]
linear) and the same model for the two nonlinear ones (MobileNetV3: linear, hardswish, linear;
ConvNeXt: LayerNorm2d, linear), counting LayerNorm's mean and variance as 2C more terms.
"""
import pytest
import torch
import torchvision
from torch import nn

from freqalign import AdaptiveFreqPool2d, freq_pool, grid_to_index, replace_gap
from freqalign.errors import FreqAlignError
from freqalign.nn import UnsupportedModelError, fcanet_frequencies
from numerics import UNIT_ROUNDOFF, gamma, randn, relative_error

U = UNIT_ROUNDOFF[torch.float64]

# name: (constructor, the module whose output is the map the head pools, the head on (B, C) features)
MODELS = {
    "resnet18": ("avgpool", lambda m, p: m.fc(p)),
    "regnet_y_400mf": ("avgpool", lambda m, p: m.fc(p)),  # squeeze-excitation pools inside
    "mobilenet_v2": ("features", lambda m, p: m.classifier(p)),  # pools functionally in forward
    "mobilenet_v3_small": ("avgpool", lambda m, p: m.classifier(p)),
    "efficientnet_b0": ("avgpool", lambda m, p: m.classifier(p)),
    "convnext_tiny": ("avgpool", lambda m, p: m.classifier(p[:, :, None, None])),
    "resnext50_32x4d": ("avgpool", lambda m, p: m.fc(p)),
    "wide_resnet50_2": ("avgpool", lambda m, p: m.fc(p)),
}


def mean_bound(n: int) -> float:
    """Largest difference, relative to mean|x|, of two float64 means of n values: each sums n
    terms and applies a weight 1/n carrying a few roundings (freqalign's is c_0(h) c_0(w) /
    sqrt(HW) built in float64: 6 roundings; counted as 8)."""
    return 2 * relative_error(n, torch.float64, [(8, U)])


def head_terms(model: nn.Module, head_modules) -> int:
    terms = 8  # elementwise steps (activation, LayerNorm's division and affine map)
    for module in head_modules.modules():
        if isinstance(module, nn.Linear):
            terms += module.in_features + 1
        elif isinstance(module, nn.LayerNorm):
            terms += 2 * module.normalized_shape[0]
    return terms


def pooled_input(model, name, images):
    seen = {}
    handle = model.get_submodule(name).register_forward_hook(
        lambda module, inputs, output: seen.update(f=output if name == "features" else inputs[0]))
    with torch.no_grad():
        logits = model(images)
    handle.remove()
    return logits, seen["f"]


@pytest.mark.parametrize("arch", list(MODELS))
def test_default_replace_gap_keeps_the_logits(backend_name, arch):
    where, head = MODELS[arch]
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=10).double().eval()
    images = randn(2, 3, 96, 96, seed=1)
    expected, features = pooled_input(model, where, images)
    pools_before = sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())

    assert replace_gap(model) is model
    swapped = [m for m in model.modules() if isinstance(m, AdaptiveFreqPool2d)]
    assert len(swapped) == 1 and swapped[0].freqs == ((0, 0),) and swapped[0].norm == "mean"
    # only the head's pooling went: the squeeze-excitation pools stay
    pools_after = sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
    assert pools_after == pools_before - (0 if arch == "mobilenet_v2" else 1)
    with torch.no_grad():
        got = model(images)

    n = features.shape[-2] * features.shape[-1]
    p = features.mean((2, 3))
    b = mean_bound(n) * features.abs().mean((2, 3))
    jac = torch.autograd.functional.jacobian(lambda q: head(model, q), p)  # (B, K, B, C)
    jac = torch.einsum("bkbc->bkc", jac).abs()
    head_modules = model.fc if hasattr(model, "fc") else model.classifier
    terms = head_terms(model, head_modules)
    limit = (torch.einsum("bkc,bc->bk", jac, b)
             + 2 * gamma(terms, U) * (torch.einsum("bkc,bc->bk", jac, p.abs()) + expected.abs()))
    ratio = ((got - expected).abs() / (limit * (1 + 2.0 ** -20))).max()
    assert ratio <= 1, f"logits moved by {ratio:.2f}x their bound"


def test_replace_gap_with_a_table_pools_there():
    """Non-default frequencies: the head sees grouped pooling at the mapped indices; calling again
    re-sets the frequencies in place."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    replace_gap(model, "top16")
    images = randn(2, 3, 224, 224, seed=2, dtype=torch.float32)
    logits, features = pooled_input(model, "avgpool", images)
    pooled = model.avgpool(features)
    indices = grid_to_index(fcanet_frequencies("top16"), 7, 7)
    assert pooled.shape == (2, 512, 1, 1)
    assert torch.equal(pooled.flatten(1), freq_pool(features, indices, grouped=True, norm="mean"))
    with torch.no_grad():
        assert torch.equal(logits, model.fc(pooled.flatten(1)))
    replace_gap(model, [(1, 2), (2, 1)])
    assert model.avgpool.freqs == ((1, 2), (2, 1))
    assert sum(isinstance(m, AdaptiveFreqPool2d) for m in model.modules()) == 1


def test_replace_gap_where_names_the_module():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(8, 2))
    replace_gap(model, where="1")
    assert isinstance(model[1], AdaptiveFreqPool2d)
    assert model(torch.zeros(1, 3, 9, 9)).shape == (1, 2)
    with pytest.raises(UnsupportedModelError, match="not a global average pooling"):
        replace_gap(model, where="0")
    with pytest.raises(UnsupportedModelError, match="no submodule 'head'"):
        replace_gap(model, where="head")


def test_models_without_global_pooling_are_clear_errors():
    flat = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten())
    with pytest.raises(UnsupportedModelError, match="no pooling modules") as error:
        replace_gap(flat)
    assert isinstance(error.value, ValueError) and isinstance(error.value, FreqAlignError)
    vgg_like = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten())
    with pytest.raises(UnsupportedModelError, match=r"AdaptiveAvgPool2d\(output_size=\(7, 7\)\)"):
        replace_gap(vgg_like)
    se_only = torchvision.models.efficientnet_b0(weights=None).features[:3]  # pooling only inside SE
    with pytest.raises(UnsupportedModelError, match="squeeze-excitation"):
        replace_gap(se_only)
