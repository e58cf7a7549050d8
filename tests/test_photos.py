"""Every photo a user has: ``freqalign score`` and ``load_scorer`` turn images by their EXIF
orientation and take grayscale, palette, CMYK, alpha and 16-bit files (each scored as its
documented RGB equivalent); a decompression bomb and broken files are one line each, or
skipped with a count; folders stream in a stable, sorted order. Every file is generated."""
import csv
import io
import os

import numpy as np
import pytest
from PIL import Image

import freqalign
from freqalign import cli, storage
from freqalign.data.files import read_rgb
from freqalign.method.model import build_model
from freqalign.run.config import make_config

rng = np.random.default_rng(0)
BASE = (np.kron(rng.random((6, 8, 3)), np.ones((8, 8, 1))) * 255).astype(np.uint8)  # 48 x 64
GRAY = BASE[..., 0]


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """An (untrained) checkpoint of the smoke model on 32 x 32 crops, one centre crop each."""
    cfg = make_config("smoke", overrides={"image_size": 32, "cnn_width": 16, "disc_hidden": 16,
                                          "regressor_hidden": 8, "eval_crops": 1,
                                          "progress": False, "device": "cpu"})
    path = tmp_path_factory.mktemp("ck") / "best.pt"
    storage.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, path)
    return str(path)


def exif_rotated(img: Image.Image) -> Image.Image:
    """``img`` stored on its side with EXIF orientation 6 (turn 90 degrees clockwise to view)."""
    stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.info["exif"] = exif.tobytes()
    return stored


def kinds():
    """``{name: (file image, save options, the RGB array it stands for)}``."""
    rgb = Image.fromarray(BASE)
    gray3 = np.repeat(GRAY[..., None], 3, axis=2)
    palette = rgb.quantize(16)
    alpha = np.full(GRAY.shape, 255, np.uint8)
    alpha[:, :32] = 0  # the left half transparent: white
    on_white = BASE.copy()
    on_white[:, :32] = 255
    cmyk = rgb.convert("CMYK")
    return {
        "rgb.png": (rgb, {}, BASE),
        "exif.png": (exif_rotated(rgb), {}, BASE),
        "gray.png": (Image.fromarray(GRAY), {}, gray3),
        "gray16.png": (Image.fromarray(GRAY.astype(np.uint16) * 257), {}, gray3),
        "palette.png": (palette, {}, np.asarray(palette.convert("RGB"))),
        "cmyk.tif": (cmyk, {}, np.asarray(cmyk.convert("RGB"))),
        "rgba.png": (Image.fromarray(np.dstack([BASE, alpha])), {}, on_white),
        "gray-alpha.png": (Image.fromarray(np.dstack([GRAY, alpha])).convert("LA"), {},
                           np.repeat(np.where(alpha > 0, GRAY, 255)[..., None], 3, axis=2)),
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, (img, options, _) in kinds().items():
        img.save(folder / name, exif=img.info.get("exif", b""), **options)
    return folder


@pytest.mark.parametrize("name", list(kinds()))
def test_each_kind_reads_as_its_rgb_equivalent(photos, name):
    assert Image.open(photos / name).mode == kinds()[name][0].mode  # the file is of that kind
    np.testing.assert_array_equal(np.asarray(read_rgb(str(photos / name))), kinds()[name][2])


def test_a_phone_jpeg_is_scored_upright(ck, tmp_path):
    stored = exif_rotated(Image.fromarray(BASE))
    stored.save(tmp_path / "phone.jpg", exif=stored.info["exif"], quality=95)
    assert Image.open(tmp_path / "phone.jpg").size == (48, 64)  # on its side in the file
    assert read_rgb(str(tmp_path / "phone.jpg")).size == (64, 48)
    scorer = freqalign.load_scorer(ck, device="cpu")
    with Image.open(tmp_path / "phone.jpg") as img:  # a PIL image: the same turn
        assert scorer(img) == scorer([str(tmp_path / "phone.jpg")])[0][1]


def test_every_kind_scores_as_its_rgb_equivalent_in_a_stable_csv(ck, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert cli.main(["score", ck, str(photos), "--out", str(out), "--device", "cpu"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["path", "score", "metric", "higher_is_better"]
    assert [r[0] for r in rows[1:]] == [str(photos / n) for n in sorted(kinds())]
    scorer = freqalign.load_scorer(ck, device="cpu")
    for path, score, _, _ in rows[1:]:
        expected = scorer(Image.fromarray(kinds()[os.path.basename(path)][2]))
        assert float(score) == pytest.approx(expected, abs=1e-6), path
    again = tmp_path / "again.csv"
    assert cli.main(["score", ck, str(photos), "--out", str(again), "--device", "cpu"]) == 0
    assert again.read_bytes() == out.read_bytes()


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """A folder with a good image, a decompression bomb (a 180-megapixel 1-bit PNG of 30 kB),
    a truncated JPEG and a text file named .png."""
    folder = tmp_path_factory.mktemp("bad")
    Image.fromarray(BASE).save(folder / "a-good.png")
    Image.new("1", (20000, 9000)).save(folder / "b-bomb.png")
    jpeg = io.BytesIO()
    Image.fromarray(BASE).save(jpeg, "JPEG")
    (folder / "c-truncated.jpg").write_bytes(jpeg.getvalue()[:300])
    (folder / "d-text.png").write_text("not an image")
    return folder


@pytest.mark.parametrize("name,why", [
    ("b-bomb.png", "DecompressionBombError: Image size (180000000 pixels) exceeds limit"),
    ("c-truncated.jpg", "OSError: "),  # its text varies with the PIL version
    ("d-text.png", "UnidentifiedImageError: cannot identify image file")])
def test_a_bomb_or_a_broken_file_is_one_line(ck, bad, capsys, name, why):
    assert cli.main(["score", ck, str(bad / name), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"freqalign score: error: cannot read image {bad / name} ({why}"), err
    assert err[0].endswith("pass skip_bad=True (--skip-bad) to skip it")


def test_skip_bad_scores_the_rest_and_counts_the_skipped(ck, bad, capsys):
    assert cli.main(["score", ck, str(bad), "--device", "cpu", "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    assert str(bad / "a-good.png") in out and "bomb" not in out
    assert err.splitlines() == [f"freqalign score: warning: skipped 3 of 4 unreadable images, "
                                f"e.g. {bad / 'b-bomb.png'}, {bad / 'c-truncated.jpg'}, "
                                f"{bad / 'd-text.png'}"]


def test_a_large_folder_streams_with_a_progress_bar(ck, tmp_path, capsys):
    """300 images in batches of 16: all scored in order, with a progress bar on stderr."""
    for i in rng.permutation(300):  # written in a random order
        Image.fromarray(BASE[:32, :32]).save(tmp_path / f"{i:03d}.png")
    scorer = freqalign.load_scorer(ck, device="cpu")
    rows = scorer.score_paths([str(tmp_path)], batch_size=16, progress=True)
    assert [os.path.basename(p) for p, _ in rows] == [f"{i:03d}.png" for i in range(300)]
    assert "scoring: 100%" in capsys.readouterr().err


def test_a_huge_panorama_is_taken(ck, tmp_path, capsys):
    """A 16000 x 400 panorama (6.4 megapixels, well under the bomb limit) scores like any image."""
    Image.fromarray(np.tile(BASE, (9, 250, 1))[:400]).save(tmp_path / "panorama.jpg", quality=90)
    assert cli.main(["score", ck, str(tmp_path / "panorama.jpg"), "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "panorama.jpg" in out and err == ""
