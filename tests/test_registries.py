"""A toy backbone and a toy backend, registered from outside the package, run through the
public paths (config, build_model, the stem cache; freq_pool, FreqPool, MultiSpectralAttention,
dct2d) and leave no trace once unregistered (docs/design.md, "Adding a backbone/backend");
the names the registries replaced or moved still import, with a DeprecationWarning."""
import numpy as np
import pytest
import torch
from torch import nn

import freqalign
from freqalign import backend
from freqalign.data.base import TensorIQADataset
from freqalign.errors import ConfigError
from freqalign.method import backbones, stem_cache
from freqalign.method.model import build_model
from freqalign.method.weights import load_checked
from freqalign.ops import torch_ref
from freqalign.run.config import ALLOWED, make_config


class ToyNet(nn.Module):
    """A frozen stride-2 stem, then a trainable stride-2 trunk with ``channels`` outputs."""

    def __init__(self, channels: int):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1).requires_grad_(False)
        self.trunk = nn.Sequential(nn.Conv2d(8, channels, 3, 2, 1), nn.ReLU())
        self.out_channels = channels

    def forward(self, x):
        return self.trunk(self.stem(x))


@pytest.fixture
def toy_backbone(tmp_path):
    """Backbone ``toy``: C = cnn_width; its default weights are a file of fixed weights."""
    torch.manual_seed(0)
    saved = ToyNet(32).state_dict()
    path = str(tmp_path / "toy.pt")
    torch.save(saved, path)

    def build(cfg, weights):
        net = ToyNet(cfg.cnn_width)
        load_checked(net, torch.load(weights), weights, "a toy")
        return net

    backbones.register_backbone("toy", backbones.Backbone(
        build, channels=lambda cfg: cfg.cnn_width, weights=lambda: path,
        cached_stem=lambda cfg: cfg.frozen_blocks > 0))
    try:
        yield saved
    finally:
        backbones.unregister_backbone("toy")


def test_a_registered_backbone_builds_validates_and_caches_its_stem(toy_backbone, tmp_path):
    cfg = make_config("smoke", overrides={"backbone": "toy", "cnn_width": 32, "window_size": 4,
                                          "cache_dir": str(tmp_path / "cache")})
    model = build_model(cfg)
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in toy_backbone.items())
    score, logit, gap = model(torch.rand(2, 3, cfg.image_size, cfg.image_size))
    assert score.shape == logit.shape == (2,) and gap.shape == (2, 32)
    # its stem is cached and the model runs its trunk on the cached outputs
    assert stem_cache.enabled(cfg)
    images = torch.randint(0, 256, (3, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    data = stem_cache.wrapper(cfg, progress=False)(
        TensorIQADataset(images, np.linspace(0.2, 0.8, 3), np.arange(3), name="toy"))
    assert data[0][0].shape[-3] == 8 and len(list((tmp_path / "cache").glob("stem-toy-*"))) == 1
    model.from_stem = True
    assert model(stem_cache.first_views([data[i][0] for i in range(3)]))[0].shape == (3,)
    # its channels are checked before anything is built
    with pytest.raises(ConfigError, match="window_size=3 must divide the backbone's 32"):
        build_model(make_config("smoke", overrides={"backbone": "toy", "cnn_width": 32,
                                                    "window_size": 3}))


def _untrained_toy(cfg, weights):
    return ToyNet(8)


def test_an_unregistered_backbone_is_refused():
    backbones.register_backbone("toy", backbones.Backbone(_untrained_toy, lambda cfg: 8))
    assert "toy" in str(ALLOWED["backbone"])
    backbones.unregister_backbone("toy")
    with pytest.raises(ConfigError, match="backbone='toy': must be one of small-cnn"):
        make_config("smoke", overrides={"backbone": "toy"})


def _counting(calls):
    """A backend on the torch reference's ops that records each kernel it runs."""
    def load():
        ref = torch_ref.load()

        def recorded(name):
            def run(*args):
                calls.append(name)
                return getattr(ref, name)(*args)
            return run

        return backend.Kernels(*map(recorded, ("transform2d", "pool_forward", "pool_backward")),
                               devices=("cpu",))

    return load


@pytest.mark.parametrize("with_attention", [False, True])
def test_a_registered_backend_runs_the_public_ops_then_leaves(with_attention):
    calls, attention_loads = [], []

    def attention():
        attention_loads.append(1)
        return backend.attention(backend.load("torch"))

    backend.register_backend("toy", _counting(calls),
                             attention=attention if with_attention else None)
    try:
        assert freqalign.backends()["toy"] == "available"
        assert attention_loads == ([1] if with_attention else [])
        x = torch.randn(2, 8, 7, 7, dtype=torch.float64, requires_grad=True)
        pool = freqalign.FreqPool(((0, 0), (1, 2)), grouped=False)
        attend = freqalign.MultiSpectralAttention(8, reduction=2, freqs="top4").double()
        outputs = {}
        for name in ("torch", "toy"):
            with freqalign.use_backend(name):
                pooled = pool(x)
                outputs[name] = (freqalign.freq_pool(x, [(1, 1), (2, 0)]), pooled,
                                 torch.autograd.grad(pooled.sum(), x)[0], freqalign.dct2d(x),
                                 attend(x))
        # the backward is the autograd of the ops the toy returns (the torch reference's)
        assert calls == ["pool_forward", "pool_forward", "transform2d"]
        for ours, reference in zip(outputs["toy"], outputs["torch"]):
            assert torch.equal(ours, reference)
    finally:
        backend.unregister_backend("toy")
    assert "toy" not in freqalign.backends()
    with pytest.raises(ValueError, match="unknown backend 'toy'"):
        with freqalign.use_backend("toy"):
            pass


def test_names_that_moved_still_import_with_a_warning():
    from freqalign.method import model, small_cnn, weights

    with pytest.warns(DeprecationWarning, match="use freqalign.method.small_cnn.SmallCNN"):
        assert model.SmallCNN is small_cnn.SmallCNN
    with pytest.warns(DeprecationWarning, match="use freqalign.method.weights.load_checked"):
        assert model.load_checked is weights.load_checked
    with pytest.warns(DeprecationWarning, match=r"use freqalign.backend.names\(\)"):
        assert backend.BACKEND_NAMES == backend.names() == ("torch", "cpu", "cuda", "triton")
