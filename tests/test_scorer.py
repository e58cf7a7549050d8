"""What users hand ``load_scorer``'s scorer: uint8 tensors from ``torchvision.io.read_image`` (scored
as the same image in [0, 1], with both backbones), uint16, single images and grey ones, paths (a
float for a file, a list for a folder or a list); other dtypes and shapes are one clear error."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import read_image

import freqalign
from freqalign import storage
from freqalign.method.model import build_model
from freqalign.run.config import make_config

# torchvision 0.29 deprecates its image decoders for torchcodec; read_image is still what users call
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")
rng = np.random.default_rng(0)
PIXELS = (np.kron(rng.random((2, 8, 8, 3)), np.ones((1, 8, 8, 1))) * 255).astype(np.uint8)  # 2 x 64 x 64


def checkpoint(folder, **overrides) -> str:
    cfg = make_config("smoke", overrides={"eval_crops": 1, "progress": False, "device": "cpu", **overrides})
    torch.manual_seed(0)
    path = folder / "best.pt"
    storage.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, path)
    return str(path)


@pytest.fixture(scope="module", params=["small-cnn", "efficientnet-lite0"])
def scorer(request, tmp_path_factory):
    """An untrained smoke checkpoint on 32 x 32 crops (small-cnn: a uint8 batch used to crash it),
    or EfficientNet-Lite0 on 64 x 64 crops (its ``255 x`` input scaling used to take uint8 silently)."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "small-cnn":
        path = checkpoint(folder, image_size=32, cnn_width=16, disc_hidden=16, regressor_hidden=8)
    else:
        path = checkpoint(folder, backbone="efficientnet-lite0", image_size=64, feature_cache=False,
                          window_size=1, grid=2, disc_hidden=16, regressor_hidden=8)
    return freqalign.load_scorer(path, device="cpu")


def test_uint8_and_uint16_score_as_the_image_in_0_1(scorer, tmp_path):
    as_uint8 = torch.from_numpy(PIXELS).permute(0, 3, 1, 2).contiguous()
    as_float = as_uint8.float() / 255
    expected = scorer(as_float)
    assert abs(float(expected[0] - expected[1])) > 3e-5  # the images score apart, 30x the tolerance below
    assert scorer(as_uint8).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert scorer(as_uint8.to(torch.uint16) * 257).tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    Image.fromarray(PIXELS[0]).save(tmp_path / "a.png")
    from_torchvision = read_image(str(tmp_path / "a.png"))  # (3, h, w) uint8: one image, a float
    assert from_torchvision.dtype == torch.uint8
    score = scorer(from_torchvision)
    assert isinstance(score, float) and score == pytest.approx(float(expected[0]), abs=1e-6)
    assert scorer(str(tmp_path / "a.png")) == pytest.approx(score, abs=1e-6)


def test_grey_is_its_rgb_equivalent(scorer):
    grey = torch.from_numpy(PIXELS[:, :, :, 0])[:, None]  # (2, 1, h, w)
    assert scorer(grey).tolist() == pytest.approx(scorer(grey.expand(-1, 3, -1, -1)).tolist(), abs=1e-6)


def test_a_file_is_a_float_a_folder_or_a_list_is_rows(scorer, tmp_path):
    for i, pixels in enumerate(PIXELS):
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
    one = scorer(tmp_path / "1.png")
    assert isinstance(one, float) and 0 <= one <= 1
    rows = scorer(str(tmp_path))
    assert [p for p, _ in rows] == [str(tmp_path / "0.png"), str(tmp_path / "1.png")]
    assert rows[1][1] == one and scorer([str(tmp_path / "1.png")]) == [rows[1]]


@pytest.mark.parametrize("images,error,words", [
    (torch.zeros(1, 3, 32, 32, dtype=torch.int32), TypeError, "uint8 (0..255), uint16"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.bool), TypeError, "got dtype torch.bool"),
    (torch.zeros(1, 4, 32, 32), ValueError, "(B, 3, h, w) batch or a (3, h, w) image"),
    (torch.zeros(32, 32), ValueError, "got shape (32, 32)")])
def test_other_tensors_are_one_clear_error(scorer, images, error, words):
    with pytest.raises(error) as caught:
        scorer(images)
    assert words in str(caught.value)
