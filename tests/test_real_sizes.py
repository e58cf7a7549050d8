"""Real datasets as the trainer reads them: random crops of whole images in training, the mean
over a grid of crops in evaluation and scoring, official splits, ResNet-50 weight files, the
Python scorer, and (slow) the paper configuration end to end on tiny datasets at real image
sizes in their official layouts."""
import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import freqalign
from freqalign import cli
from freqalign.data.domains import load_data
from freqalign.errors import CheckpointError
from freqalign.scoring import crop_grid, crop_means, grid_crops
from freqalign.run import checkpoint
from freqalign.train.batches import crop_batch
from freqalign.run.config import make_config
from freqalign.method.model import build_model
from freqalign.method.resnet import ResNet50Features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- tiny official layouts
def _photo(rng, width, height, noise):
    """Smooth random content with white noise of std ``noise`` (uint8 RGB)."""
    coarse = rng.random((height // 32 + 2, width // 32 + 2, 3))
    y = np.linspace(0, coarse.shape[0] - 1.001, height)
    x = np.linspace(0, coarse.shape[1] - 1.001, width)
    img = coarse[y.astype(int)][:, x.astype(int)]
    img = img + rng.normal(0, noise, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def make_kadid(root, size=(512, 384), refs=6, levels=3):
    """KADID-10k layout: ``dmos.csv`` and ``images/I<ref>_01_0<level>.png``."""
    os.makedirs(os.path.join(root, "images"))
    rng, rows = np.random.default_rng(0), []
    for r in range(1, refs + 1):
        for level in range(1, levels + 1):
            name = f"I{r:02d}_01_{level:02d}.png"
            _photo(rng, *size, 0.05 * level).save(os.path.join(root, "images", name))
            rows.append([name, f"I{r:02d}.png", f"{5 - level + rng.random():.3f}", "0.5"])
    _write_csv(os.path.join(root, "dmos.csv"), ["dist_img", "ref_img", "dmos", "var"], rows)
    return f"kadid10k:{root}"


def make_koniq(root, size=(1024, 768), sets=(10, 4, 4)):
    """KonIQ-10k layout: the scores file, the official split file and ``1024x768/*.jpg``."""
    os.makedirs(os.path.join(root, "1024x768"))
    rng, scores, split = np.random.default_rng(1), [], []
    names = ["training"] * sets[0] + ["validation"] * sets[1] + ["test"] * sets[2]
    for i, part in enumerate(names):
        name, mos = f"{1000 + i}.jpg", 1 + 4 * rng.random()
        _photo(rng, *size, 0.2 * (5 - mos) / 4).save(os.path.join(root, "1024x768", name),
                                                    quality=90)
        scores.append([name, *[0] * 6, f"{mos:.3f}", "0.5", "0"])
        split.append([name, *[0] * 6, f"{1 + 99 * (mos - 1) / 4:.3f}", "0.5", part])
    head = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS"]
    _write_csv(os.path.join(root, "koniq10k_scores_and_distributions.csv"),
               head + ["SD", "MOS_zscore"], scores)
    _write_csv(os.path.join(root, "koniq10k_distributions_sets.csv"), head + ["SD", "set"], split)
    return f"koniq10k:{root}"


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


# ---------------------------------------------------------------- crops
def test_training_crops_are_random_windows_of_the_whole_image():
    rows, cols = torch.meshgrid(torch.arange(384.0), torch.arange(512.0), indexing="ij")
    image = torch.stack([rows, cols, rows * cols])  # every pixel says where it is
    draws = [crop_batch([image], 224, torch.Generator().manual_seed(s))[0] for s in range(8)]
    corners = set()
    for crop in draws:
        top, left = int(crop[0].min()), int(crop[1].min())
        assert torch.equal(image[:, top:top + 224, left:left + 224], crop)
        corners.add((top, left))
    assert len(corners) == 8 and (80, 144) not in corners  # never the fixed centre crop
    again = crop_batch([image], 224, torch.Generator().manual_seed(3))[0]
    assert torch.equal(again, draws[3])  # deterministic for a seed


def test_eval_crop_grid_spans_the_image():
    assert crop_grid(384, 512, 224, 1) == [(80, 144)]  # the centre crop
    grid = crop_grid(384, 512, 224, 6)  # 2 rows x 3 columns, edge to edge
    assert grid == [(t, l) for t in (0, 160) for l in (0, 144, 288)]
    covered = torch.zeros(384, 512, dtype=torch.bool)
    for t, l in grid:
        covered[t:t + 224, l:l + 224] = True
    assert covered.all()
    assert crop_grid(64, 64, 64, 6) == [(0, 0)]  # the demo: one crop, the image itself
    assert crop_grid(224, 600, 224, 4) == [(0, 0), (0, 125), (0, 250), (0, 376)]


def test_scores_are_the_mean_over_the_crops():
    cfg = make_config("smoke", overrides={"cnn_width": 16, "cnn_downsample": 2})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    images = [torch.rand(3, 48, 64), torch.rand(3, 32, 32)]
    out = crop_means(model, images, 32, 6, 4, "cpu")
    crops, owner = grid_crops(images, 32, 6)
    assert owner.tolist() == [0] * 6 + [1]
    with torch.no_grad():
        each = model(crops)[0]
    torch.testing.assert_close(out["pred"], torch.stack([each[:6].mean(), each[6]]))
    assert out["feat"].shape == (2, 16)


# ---------------------------------------------------------------- data and splits
def test_large_jpegs_are_decoded_at_a_reduced_scale(tmp_path):
    """``max_side`` decodes a 1024x768 JPEG straight to 512x384 at libjpeg's 1/2 DCT scale.
    Both that and a full decode with a bicubic resize are mean-preserving low-pass filters, so
    the channel means agree up to uint8 rounding and border terms: within half a grey level
    (the synthetic photos differ by 0.02-0.07 levels); the per-pixel difference is the two
    filters' different treatment of the noise, a few grey levels."""
    from freqalign.data.files import fit_size, read_rgb

    spec = make_koniq(str(tmp_path / "koniq"), sets=(2, 0, 0))
    folder = os.path.join(spec.split(":", 1)[1], "1024x768")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        reduced = np.asarray(read_rgb(path, max_side=512), dtype=np.float64)
        resized = np.asarray(fit_size(read_rgb(path), 512), dtype=np.float64)
        assert reduced.shape == resized.shape == (384, 512, 3)
        assert np.abs(reduced.mean((0, 1)) - resized.mean((0, 1))).max() < 0.5
    png = str(tmp_path / "a.png")
    Image.fromarray(np.zeros((384, 512, 3), np.uint8)).save(png)
    assert read_rgb(png, max_side=256).size == (512, 384)  # other formats decode in full


def test_trainer_reads_whole_images_with_official_and_content_disjoint_splits(tmp_path):
    source = make_kadid(str(tmp_path / "kadid"), size=(64, 48), refs=5)
    target = make_koniq(str(tmp_path / "koniq"), size=(96, 72), sets=(6, 3, 3))
    cfg = make_config("smoke", overrides={"source": source, "target": target, "image_size": 32,
                                          "data_size": 64})
    data, how = load_data(cfg)
    assert how["target"] == {"kind": "official", "parts": ["train", "val", "test"]}
    assert how["source"]["kind"] == "group"
    sizes = {k: len(v) for k, v in data.items()}
    assert (sizes["tgt_train"], sizes["tgt_val"], sizes["tgt_test"]) == (6, 3, 3)
    assert data["tgt_test"].indices == [9, 10, 11]  # the rows the split file calls test
    refs = [set(data[k].groups.tolist()) for k in ("src_train", "src_val")]
    assert refs[0] and refs[1] and not refs[0] & refs[1]  # disjoint by reference image
    assert sizes["src_train"] + sizes["src_val"] == 15
    # whole images, the longer side capped at data_size: the trainer crops them itself
    assert data["src_train"][0][0].shape == (3, 48, 64)
    assert data["tgt_train"][0][0].shape == (3, 48, 64)  # 96x72 -> 64x48
    data, how = load_data(make_config("smoke", overrides={
        "source": source, "target": target, "image_size": 32, "official_split": False}))
    assert how["target"]["kind"] == "group" and sum(len(data[k]) for k in data if "tgt" in k) == 12


def test_an_incomplete_official_split_falls_back_to_content_groups(tmp_path):
    target = make_koniq(str(tmp_path / "koniq"), size=(48, 40), sets=(9, 0, 3))
    cfg = make_config("smoke", overrides={"source": target, "target": target, "image_size": 32})
    with pytest.warns(RuntimeWarning, match="official split not used"):
        _, how = load_data(cfg)
    assert how["target"]["kind"] == "group"
    assert how["target"]["official_split_unused"] == "it has no val part"


# ---------------------------------------------------------------- ResNet-50 weights
def test_resnet50_weights_in_every_common_form(tmp_path):
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    forms = {"plain": state, "checkpoint": {"state_dict": state, "epoch": 3},
             "ddp": {"model": {f"module.{k}": v for k, v in state.items()}}}
    for name, obj in forms.items():
        torch.save(obj, tmp_path / f"{name}.pth")
        loaded = ResNet50Features(str(tmp_path / f"{name}.pth"))
        assert torch.equal(loaded.body[0].weight, state["conv1.weight"]), name
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match="not a torchvision resnet50 state_dict"):
        ResNet50Features(str(tmp_path / "r18.pth"))
    torch.save({"weights": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="found a dict with keys"):
        ResNet50Features(str(tmp_path / "odd.pth"))
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(CheckpointError, match="refused to load"):
        ResNet50Features(str(tmp_path / "module.pth"))


# ---------------------------------------------------------------- the Python scorer
def test_load_scorer_scores_tensors_images_and_paths_alike(tmp_path):
    cfg = make_config("smoke", overrides={"cnn_width": 16, "cnn_downsample": 2, "eval_crops": 4,
                                          "data_size": 64, "device": "cpu"})
    torch.manual_seed(0)
    model = build_model(cfg)
    checkpoint.save({"model": model.state_dict(), "config": cfg.to_dict()}, str(tmp_path / "m.pt"))
    scorer = freqalign.load_scorer(str(tmp_path / "m.pt"))
    assert scorer.device == torch.device("cpu") and scorer.crops == 4
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(64, 48), (128, 96), (40, 30)]):  # native, shrunk, enlarged
        paths.append(str(tmp_path / "img" / f"{i}.png"))
        os.makedirs(os.path.dirname(paths[-1]), exist_ok=True)
        _photo(rng, *size, 0.1).save(paths[-1])
    by_path = scorer(str(tmp_path / "img"))
    assert [p for p, _ in by_path] == paths
    by_image = [scorer(Image.open(p)) for p in paths]
    assert [s for _, s in by_path] == pytest.approx(by_image, abs=1e-6)
    batch = torch.from_numpy(np.array(Image.open(paths[0]))).permute(2, 0, 1)[None] / 255.0
    assert float(scorer(batch)[0]) == pytest.approx(by_image[0], abs=1e-6)
    crops, _ = grid_crops([batch[0]], 32, 4)
    with torch.no_grad():
        assert by_image[0] == pytest.approx(float(model.eval()(crops)[0].mean()), abs=1e-6)
    with pytest.raises(TypeError, match="PIL image or paths"):
        scorer(3)


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_paper_configuration_end_to_end_at_real_sizes(tmp_path, capsys):
    """KADID-10k (512x384 PNGs) -> KonIQ-10k (1024x768 JPEGs, official split): the paper's
    configuration file (ResNet-50, randomly initialised here; 224 crops) through all three
    stages with its steps and batches cut down, then ``eval`` and ``score``."""
    source = make_kadid(str(tmp_path / "kadid"), levels=4)  # 24 images, 4+ held out (PLCC fit)
    target = make_koniq(str(tmp_path / "koniq"), sets=(6, 3, 4))
    run = tmp_path / "run"
    small = ["backbone_weights=", "batch_size=1", "eval_batch_size=8", "warmup_steps=1",
             "dann_warmup_steps=1", "search_stride=33", "steps_per_position=1", "finetune_steps=1",
             "eval_every=100", "checkpoint_every=100", "log_every=1",
             "criterion_max_samples=2", "domain_fit_steps=5", "workers=1", "eval_crops=2",
             "progress=false"]
    config = os.path.join(ROOT, "configs", "kadid10k-to-koniq10k.yaml")
    assert cli.main(["train", "--config", config, "--out", str(run), f"source={source}",
                     f"target={target}", *small]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["preset"] == "paper" and results["config"]["backbone"] == "resnet50"
    assert [s[0] for s in results["stages"]] == ["warmup", "dann-warmup", "search", "finetune"]
    assert results["feature_map"] == [7, 7] and results["eval_crops"] == 2
    assert [e["position"] for e in results["search"]] == [0, 33]
    assert results["selected_window"]["size"] == 16
    assert results["splits"]["target"]["kind"] == "official"
    assert results["splits"]["source"]["kind"] == "group"
    assert {k: results["sizes"][k] for k in ("tgt_train", "tgt_val", "tgt_test")} == \
        {"tgt_train": 6, "tgt_val": 3, "tgt_test": 4}
    assert -1 <= results["target"]["srcc"] <= 1 and np.isfinite(results["source_val"]["rmse"])
    capsys.readouterr()

    best = str(run / "checkpoints" / "best.pt")
    assert cli.main(["eval", best, "--dataset", target, "--batch-size", "8", "--crops", "1"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 13 and metrics["eval_crops"] == 1 and -1 <= metrics["srcc"] <= 1

    scores_file = tmp_path / "scores.csv"
    images = [str(tmp_path / "koniq" / "1024x768" / f"{1000 + i}.jpg") for i in range(3)]
    assert cli.main(["score", best, *images, "--out", str(scores_file)]) == 0
    with open(scores_file) as fh:
        rows = [(r["path"], float(r["score"])) for r in csv.DictReader(fh)]
    assert [p for p, _ in rows] == images and all(0 <= s <= 1 for _, s in rows)
    from_python = freqalign.load_scorer(best)(images)  # the same multi-crop scores
    assert [p for p, _ in from_python] == [p for p, _ in rows]
    assert [s for _, s in from_python] == pytest.approx([s for _, s in rows], abs=1e-6)
