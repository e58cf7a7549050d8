"""Loaders of the public IQA datasets, each on a tiny copy of its official layout built here
(exact file names, CSV columns, .mat keys, .xlsx columns), plus bad-data handling and
``score_images``."""
import csv
import json
import os
import warnings

import numpy as np
import pytest
import scipy.io
import scipy.stats
import torch
from PIL import Image

from freqalign.data import open_dataset, split_by_group
from freqalign.data.files import BadImageError, DatasetLayoutError
from freqalign.data.file_scores import expand_paths, format_table, save_scores, score_images
from transforms import random_crop


# ---------------------------------------------------------------- builders
def write_image(path, seed=0, size=(10, 8)):
    """A small noise image; the format follows the extension (PNG, JPEG, BMP)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_xlsx(path, header, rows):
    import openpyxl  # a declared dependency: fail, do not skip, when it is missing

    os.makedirs(os.path.dirname(path), exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for r in rows:
        sheet.append(list(r))
    book.save(path)


def cell(names):
    out = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        out[i, 0] = n
    return out


def check_items(ds, image_size=None):
    image, score = ds[0]
    assert image.dtype == torch.float32 and image.dim() == 3 and image.shape[0] == 3
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert score.dtype == torch.float32 and score.dim() == 0
    assert float(score) == pytest.approx(ds.scores[0])
    if image_size is not None:
        assert tuple(image.shape[1:]) == (image_size, image_size)
    assert ds.scores.dtype == np.float64 and ds.scores.min() >= 0 and ds.scores.max() <= 1


def check_direction(raw, scores, higher_is_better):
    rho = scipy.stats.spearmanr(raw, scores)[0]
    assert rho == pytest.approx(1.0 if higher_is_better else -1.0)


def check_disjoint(ds, seed=0):
    parts = split_by_group(ds, {"train": 0.6, "test": 0.4}, seed=seed)
    a, b = (set(np.asarray(p.groups).tolist()) for p in parts.values())
    assert a and b and not (a & b)
    assert sum(len(p) for p in parts.values()) == len(ds)


def make_kadid(root, n_ref=3, n_dist=4):
    rows = []
    rng = np.random.default_rng(1)
    for r in range(1, n_ref + 1):
        for d in range(1, n_dist + 1):
            name = f"I{r:02d}_{d:02d}_01.png"
            write_image(str(root / "images" / name), seed=r * 10 + d)
            rows.append((name, f"I{r:02d}.png", round(float(rng.uniform(1, 5)), 2), 0.5))
    write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    return rows


# ---------------------------------------------------------------- synthetic datasets
def test_kadid10k(tmp_path):
    rows = make_kadid(tmp_path)
    ds = open_dataset(f"kadid10k:{tmp_path}", image_size=6)
    raw = np.array([r[2] for r in rows])
    assert len(ds) == 12 and ds.name == "kadid10k"
    np.testing.assert_allclose(ds.scores, (raw - 1) / 4)
    check_direction(raw, ds.scores, True)
    assert sorted(set(ds.groups)) == ["I01.png", "I02.png", "I03.png"]
    check_items(ds, image_size=6)
    check_disjoint(ds)
    ds.transform = random_crop(5)
    assert tuple(ds[3][0].shape) == (3, 5, 5)


def make_live(root, key="dmos_new", file="dmos_realigned.mat"):
    folders = [("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174)]
    refs = [f"ref{k}.bmp" for k in range(29)]
    rng = np.random.default_rng(2)
    n = sum(c for _, c in folders)
    refnames = [refs[i % 29] for i in range(n)]
    orgs = np.zeros((1, n))
    orgs[0, ::9] = 1  # every 9th entry is a reference image
    dmos = rng.uniform(0, 100, (1, n))
    dmos[orgs == 1] = 0.0
    for folder, count in folders:
        os.makedirs(root / folder)
        for i in range(1, count + 1):
            write_image(str(root / folder / f"img{i}.bmp"), seed=i, size=(4, 4))
    scipy.io.savemat(root / file, {key: dmos, "orgs": orgs})
    refcell = np.empty((1, n), dtype=object)
    refcell[0, :] = refnames
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": refcell})
    return dmos.ravel(), orgs.ravel().astype(bool), refnames


@pytest.mark.parametrize("key,file", [("dmos_new", "dmos_realigned.mat"), ("dmos", "dmos.mat")])
def test_live(tmp_path, key, file):
    dmos, orgs, refnames = make_live(tmp_path, key, file)
    ds = open_dataset(f"live:{tmp_path}")
    keep = ~orgs
    assert len(ds) == keep.sum() == 982 - 110
    np.testing.assert_allclose(ds.scores, 1 - dmos[keep] / 100)
    check_direction(dmos[keep], ds.scores, False)
    assert list(ds.groups) == [r for r, k in zip(refnames, keep) if k]
    every = [os.path.join(str(tmp_path), f, f"img{i}.bmp") for f, n in
             [("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174)]
             for i in range(1, n + 1)]
    assert ds.paths == [p for p, k in zip(every, keep) if k]
    assert ds.info["distortion"][-1] == "fastfading"
    check_items(ds)
    check_disjoint(ds)


def test_live_wrong_length(tmp_path):
    make_live(tmp_path)
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": cell(["a.bmp"] * 5)})
    with pytest.raises(DatasetLayoutError, match="982"):
        open_dataset(f"live:{tmp_path}")


def test_csiq_label_txt(tmp_path):
    names = [f"{ref}.{kind}.{lev}.png" for ref in ("1600", "boston", "lake")
             for kind in ("AWGN", "JPEG") for lev in (1, 2)]
    dmos = np.linspace(0.05, 0.9, len(names))
    (tmp_path / "csiq_label.txt").write_text(
        "".join(f"{n} {d:.6f}\n" for n, d in zip(names, dmos)))
    for i, n in enumerate(names):
        write_image(str(tmp_path / "dst_imgs_all" / n), seed=i)
    ds = open_dataset(f"csiq:{tmp_path}")
    assert len(ds) == 12
    np.testing.assert_allclose(ds.scores, 1 - dmos, atol=1e-6)
    check_direction(dmos, ds.scores, False)
    assert sorted(set(ds.groups)) == ["1600", "boston", "lake"]
    check_items(ds)
    check_disjoint(ds)


def test_csiq_pyiqa_meta_and_subfolders(tmp_path):
    rows = []
    for i, (kind, folder) in enumerate([("AWGN", "awgn"), ("jpeg2000", "jpeg2000")]):
        for ref in ("elk", "woman"):
            name = f"{ref}.{kind}.{i + 1}.png"
            write_image(str(tmp_path / "dst_imgs" / folder / name), seed=i)
            rows.append((f"{ref}.png", name, 0.2 + 0.3 * i))
    write_csv(tmp_path / "meta_info_CSIQDataset.csv", ["ref_name", "dist_name", "dmos"], rows)
    ds = open_dataset(f"csiq:{tmp_path}")
    assert len(ds) == 4 and sorted(set(ds.groups)) == ["elk", "woman"]
    np.testing.assert_allclose(ds.scores, [0.8, 0.8, 0.5, 0.5])
    check_items(ds)


def test_tid2013_mixed_case(tmp_path):
    lines, raw = [], []
    for r in (1, 2, 25):
        for t, lev in ((1, 1), (11, 1), (3, 5)):
            name = f"i{r:02d}_{t:02d}_{lev}.bmp"
            on_disk = name.upper() if t == 11 else name  # TID2013 ships I01_11_1.BMP
            write_image(str(tmp_path / "distorted_images" / on_disk), seed=r + t)
            mos = 0.5 + r * 0.2 + t * 0.1
            raw.append(mos)
            lines.append(f"{mos:.5f} {name}\n")
    (tmp_path / "mos_with_names.txt").write_text("".join(lines))
    ds = open_dataset(f"tid2013:{tmp_path}")
    assert len(ds) == 9
    np.testing.assert_allclose(ds.scores, np.array(raw) / 9, atol=1e-6)
    check_direction(raw, ds.scores, True)
    assert sorted(set(ds.groups)) == ["i01", "i02", "i25"]
    assert ds.paths[1].endswith("I01_11_1.BMP")
    check_items(ds)
    check_disjoint(ds)


# ---------------------------------------------------------------- authentic datasets
def make_koniq(root, folder="1024x768", n=10, sets=True, scores=True):
    names = [f"{1000 + i}.jpg" for i in range(n)]
    mos5 = np.linspace(1.2, 4.6, n)[::-1]
    for i, name in enumerate(names):
        write_image(str(root / folder / name), seed=i, size=(16, 12))
    if scores:
        write_csv(root / "koniq10k_scores_and_distributions.csv",
                  ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD",
                   "MOS_zscore"],
                  [(nm, 0.1, 0.2, 0.4, 0.2, 0.1, 100, m, 0.6, (m - 1) / 4 * 100)
                   for nm, m in zip(names, mos5)])
    if sets:
        split = ["training"] * (n - 3) + ["validation", "test", "test"]
        write_csv(root / "koniq10k_distributions_sets.csv",
                  ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"],
                  [(nm, 0.1, 0.2, 0.4, 0.2, 0.1, 100, (m - 1) / 4 * 99 + 1, 0.6, s)
                   for nm, m, s in zip(names, mos5, split)])
    return names, mos5


def test_koniq10k_official_split(tmp_path):
    names, mos5 = make_koniq(tmp_path)
    ds = open_dataset(f"koniq10k:{tmp_path}", image_size=8)
    assert len(ds) == 10 and list(ds.groups) == names
    np.testing.assert_allclose(ds.scores, (mos5 - 1) / 4)
    check_direction(mos5, ds.scores, True)
    assert "1024x768" in ds.paths[0]
    split = ds.official_split
    assert {k: len(v) for k, v in split.items()} == {"train": 7, "val": 1, "test": 2}
    assert list(split["test"]) == [8, 9]
    check_items(ds, image_size=8)
    check_disjoint(ds)


def test_koniq10k_512_folder_and_sets_only(tmp_path):
    names, mos5 = make_koniq(tmp_path, folder="512x384", scores=False)
    ds = open_dataset(f"koniq10k:{tmp_path}")
    np.testing.assert_allclose(ds.scores, (mos5 - 1) / 4)  # 1-100 rescale of the same MOS
    assert "512x384" in ds.paths[0]
    make_koniq(tmp_path, folder="1024x768", sets=False)
    assert "1024x768" in open_dataset(f"koniq10k:{tmp_path}").paths[0]  # preferred
    small = open_dataset(f"koniq10k:{tmp_path / '512x384'}")  # the folder picks the size
    assert "512x384" in small.paths[0] and len(small) == 10


def test_livec_excludes_training_images(tmp_path):
    names = [f"t{i}.bmp" for i in range(1, 8)] + ["100.bmp", "101.bmp", "3.bmp", "1000.JPG",
                                                   "102.bmp"]
    mos = np.array([50.0] * 7 + [10.0, 80.0, 33.0, 64.5, 99.0])
    for i, n in enumerate(names):
        folder = "Images/trainingImages" if n.startswith("t") else "Images"
        write_image(str(tmp_path / folder / n), seed=i)
    os.makedirs(tmp_path / "Data")
    scipy.io.savemat(tmp_path / "Data" / "AllImages_release.mat",
                     {"AllImages_release": cell(names)})
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat",
                     {"AllMOS_release": mos.reshape(1, -1)})
    ds = open_dataset(f"livec:{tmp_path}")
    assert len(ds) == 5 and list(ds.groups) == names[7:]
    np.testing.assert_allclose(ds.scores, mos[7:] / 100)
    check_direction(mos[7:], ds.scores, True)
    check_items(ds)
    check_disjoint(ds)


def test_spaq_xlsx_and_shrink(tmp_path):
    names = [f"{i:05d}.jpg" for i in range(1, 7)]
    mos = [12.5, 88.0, 47.3, 60.0, 5.0, 71.2]
    for i, n in enumerate(names[1:], 1):
        write_image(str(tmp_path / "TestImage" / n), seed=i, size=(20, 16))
    yy, xx = np.mgrid[0:1100, 0:1200] / 100.0  # a smooth photo-like first image, 1200 x 1100
    smooth = np.stack([np.sin(xx), np.cos(yy), np.sin(xx + yy)], -1) * 100 + 128
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "TestImage" / names[0],
                                                  quality=95)
    write_xlsx(str(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx"),
               ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness",
                "Sharpness"], [(n, m, 50, 50, 50, 50, 50) for n, m in zip(names, mos)])
    ds = open_dataset(f"spaq:{tmp_path}")
    assert len(ds) == 6 and list(ds.groups) == names
    np.testing.assert_allclose(ds.scores, np.array(mos) / 100)
    check_direction(mos, ds.scores, True)
    big = ds[0][0]  # a JPEG decoded at half scale (draft), then resized: shorter side 512
    assert tuple(big.shape) == (3, 512, 559)
    exact = np.asarray(Image.open(ds.paths[0]).convert("RGB").resize((559, 512), Image.BICUBIC))
    assert np.abs(big.permute(1, 2, 0).numpy() * 255 - exact).mean() < 1.0
    assert tuple(ds[1][0].shape) == (3, 16, 20)  # small images untouched
    check_disjoint(ds)


def test_bid_xlsx(tmp_path):
    score = [4.2, 0.8, 2.5, 3.3, 1.1]
    for i in range(1, 6):
        write_image(str(tmp_path / "ImageDatabase" / f"DatabaseImage{i:04d}.JPG"), seed=i)
    write_xlsx(str(tmp_path / "DatabaseGrades.xlsx"),
               ["Image Number", "Average Subjective Score"],
               [(i, s) for i, s in zip(range(1, 6), score)])
    ds = open_dataset(f"bid:{tmp_path}")
    assert len(ds) == 5 and ds.groups[0] == "DatabaseImage0001.JPG"
    np.testing.assert_allclose(ds.scores, np.array(score) / 5)
    check_direction(score, ds.scores, True)
    check_items(ds)
    check_disjoint(ds)


# ---------------------------------------------------------------- tables
def test_pyiqa_known_files(tmp_path):
    make_kadid(tmp_path / "kadid")
    with open(tmp_path / "kadid" / "dmos.csv") as f:
        rows = list(csv.DictReader(f))
    write_csv(tmp_path / "kadid" / "meta_info_KADID10kDataset.csv",
              ["ref_name", "dist_name", "dmos", "std"],
              [(r["ref_img"], r["dist_img"], r["dmos"], 0.5) for r in rows])
    ds = open_dataset(f"pyiqa:{tmp_path / 'kadid' / 'meta_info_KADID10kDataset.csv'}")
    direct = open_dataset(f"kadid10k:{tmp_path / 'kadid'}")
    np.testing.assert_allclose(ds.scores, direct.scores)
    assert list(ds.groups) == list(direct.groups) and ds.name == "pyiqa:KADID10k"
    check_items(ds)

    live = tmp_path / "live"
    for i, f in enumerate(["jp2k/img2.bmp", "jp2k/img3.bmp", "wn/img2.bmp"]):
        write_image(str(live / f), seed=i)
    write_csv(live / "meta_info_LIVEIQADataset.csv", ["ref_name", "dist_name", "mos"],
              [("a.bmp", "jp2k/img2", 20.0), ("b.bmp", "jp2k/img3", 70.0),
               ("a.bmp", "wn/img2", 45.0)])
    ds = open_dataset(f"pyiqa:{live / 'meta_info_LIVEIQADataset.csv'}")
    np.testing.assert_allclose(ds.scores, [0.8, 0.3, 0.55])  # the column holds DMOS
    assert ds.paths[2].endswith(os.path.join("wn", "img2.bmp"))

    koniq = tmp_path / "koniq"
    for i in range(4):
        write_image(str(koniq / "images" / f"{i}.jpg"), seed=i)
    write_csv(koniq / "meta_info_KonIQ10kDataset.csv", ["img_name", "mos", "std", "split"],
              [(f"{i}.jpg", 10 + 20 * i, 0.5, s)
               for i, s in enumerate(["training", "training", "validation", "test"])])
    ds = open_dataset(f"pyiqa:{koniq / 'meta_info_KonIQ10kDataset.csv'}?root={koniq / 'images'}")
    assert {k: list(v) for k, v in ds.official_split.items()} == \
        {"train": [0, 1], "val": [2], "test": [3]}


def test_pyiqa_unknown_file_warns(tmp_path):
    for i in range(3):
        write_image(str(tmp_path / f"{i}.png"), seed=i)
    write_csv(tmp_path / "meta_info_MineDataset.csv", ["img_name", "dmos"],
              [("0.png", 3.0), ("1.png", 1.0), ("2.png", 2.0)])
    with pytest.warns(RuntimeWarning, match="not a known pyiqa meta file"):
        ds = open_dataset(f"pyiqa:{tmp_path / 'meta_info_MineDataset.csv'}")
    np.testing.assert_allclose(ds.scores, [0.0, 1.0, 0.5])  # dmos: lower = better


def test_generic_csv(tmp_path):
    for i in range(4):
        write_image(str(tmp_path / "imgs" / f"{i}.png"), seed=i)
    write_csv(tmp_path / "labels.csv", ["path", "score", "group"],
              [(f"imgs/{i}.png", v, g) for i, (v, g) in enumerate(
                  [(10, "a"), (90, "a"), (40, "b"), (60, "c")])])
    ds = open_dataset(f"csv:{tmp_path / 'labels.csv'}?range=0,100")
    np.testing.assert_allclose(ds.scores, [0.1, 0.9, 0.4, 0.6])
    assert list(ds.groups) == ["a", "a", "b", "c"]
    ds = open_dataset(f"csv:{tmp_path / 'labels.csv'}?higher_is_better=false&range=0,100")
    np.testing.assert_allclose(ds.scores, [0.9, 0.1, 0.6, 0.4])
    ds = open_dataset(f"csv:{tmp_path / 'labels.csv'}")  # default: the observed range
    np.testing.assert_allclose(ds.scores, [0.0, 1.0, 0.375, 0.625])
    check_items(ds)
    check_disjoint(ds)
    with pytest.raises(ValueError, match="unknown option"):
        open_dataset(f"csv:{tmp_path / 'labels.csv'}?order=up")


# ---------------------------------------------------------------- bad data
def test_missing_root_and_label_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match="open it as 'koniq10k:ROOT'"):
        open_dataset("koniq10k")
    with pytest.raises(DatasetLayoutError, match="dataset root not found"):
        open_dataset(f"spaq:{tmp_path / 'nope'}")
    cases = {"kadid10k": "dmos.csv", "koniq10k": "koniq10k_scores_and_distributions.csv",
             "livec": "AllImages_release.mat", "spaq": "MOS and Image attribute scores.xlsx",
             "live": "dmos_realigned.mat", "csiq": "csiq_label.txt",
             "tid2013": "mos_with_names.txt", "bid": "DatabaseGrades.xlsx"}
    for name, file in cases.items():
        with pytest.raises(DatasetLayoutError) as err:
            open_dataset(f"{name}:{tmp_path}")
        text = str(err.value)
        assert file in text and "expected layout" in text, (name, text)


def test_missing_column_and_key(tmp_path):
    write_csv(tmp_path / "dmos.csv", ["dist_img", "ref_img", "mos"], [("a.png", "r.png", 3)])
    os.makedirs(tmp_path / "images")
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['dmos'\]"):
        open_dataset(f"kadid10k:{tmp_path}")
    os.makedirs(tmp_path / "Data")
    scipy.io.savemat(tmp_path / "Data" / "AllImages_release.mat", {"names": cell(["a.bmp"])})
    with pytest.raises(DatasetLayoutError, match="lacks key 'AllImages_release'"):
        open_dataset(f"livec:{tmp_path}")


def test_missing_image_names_file_and_layout(tmp_path):
    make_kadid(tmp_path)
    os.remove(tmp_path / "images" / "I02_03_01.png")
    with pytest.raises(DatasetLayoutError) as err:
        open_dataset(f"kadid10k:{tmp_path}")
    assert "I02_03_01.png" in str(err.value) and "ROOT/images/" in str(err.value)
    with pytest.warns(RuntimeWarning, match=r"skipped 1 of 12 images \(1 missing, 0 unread"):
        ds = open_dataset(f"kadid10k:{tmp_path}", skip_bad=True)
    assert len(ds) == 11 and not any(p.endswith("I02_03_01.png") for p in ds.paths)


def test_unreadable_image_and_skip_bad(tmp_path):
    rows = make_kadid(tmp_path)
    (tmp_path / "images" / "I01_02_01.png").write_bytes(b"not an image at all")
    with open(tmp_path / "images" / "I03_04_01.png", "r+b") as f:  # truncate a real PNG
        f.truncate(40)
    ds = open_dataset(f"kadid10k:{tmp_path}")  # existence is checked, decoding is lazy
    with pytest.raises(BadImageError, match=r"I01_02_01\.png.*--skip-bad"):
        ds[1]
    with pytest.warns(RuntimeWarning, match=r"skipped 2 of 12 images \(0 missing, 2 unread"):
        ds = open_dataset(f"kadid10k:{tmp_path}", skip_bad=True)
    assert len(ds) == 10 and ds.skipped == 2
    kept = [r for r in rows if r[0] not in ("I01_02_01.png", "I03_04_01.png")]
    np.testing.assert_allclose(ds.scores, (np.array([r[2] for r in kept]) - 1) / 4)
    for i in range(len(ds)):
        ds[i]


def test_skip_bad_keeps_official_split_aligned(tmp_path):
    make_koniq(tmp_path)
    (tmp_path / "1024x768" / "1008.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.warns(RuntimeWarning, match="skipped 1 of 10"):
        ds = open_dataset(f"koniq10k:{tmp_path}", skip_bad=True)
    assert len(ds) == 9 and {k: list(v) for k, v in ds.official_split.items()} == \
        {"train": list(range(7)), "val": [7], "test": [8]}  # 1008.jpg was a test image


# ---------------------------------------------------------------- scoring
class MeanModel(torch.nn.Module):
    """Score = mean pixel value; returns (B, 1) like a regressor head."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_score_images_folders_files_and_batches(tmp_path):
    for i in range(5):
        write_image(str(tmp_path / "a" / f"{i}.png"), seed=i, size=(12 + i, 10))
    write_image(str(tmp_path / "a" / "sub" / "x.jpg"), seed=9)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    write_image(str(tmp_path / "single.bmp"), seed=7)
    paths = [tmp_path / "single.bmp", tmp_path / "a"]
    assert [os.path.basename(p) for p in expand_paths(paths)] == \
        ["single.bmp", "0.png", "1.png", "2.png", "3.png", "4.png", "x.jpg"]
    out = score_images(MeanModel(), paths, batch_size=3, device="cpu", image_size=8,
                       progress=False)
    full = score_images(MeanModel(), paths, batch_size=4, device="cpu", image_size=None,
                        progress=False)
    assert [p for p, _ in out] == expand_paths(paths) == [p for p, _ in full]
    for path, s in full:
        expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).mean() / 255
        assert s == pytest.approx(expected, abs=1e-5)
    arr = np.asarray(Image.open(tmp_path / "a" / "4.png").convert("RGB"), dtype=np.float64)
    top, left = (10 - 8) // 2, (16 - 8) // 2
    assert out[5][1] == pytest.approx(arr[top:top + 8, left:left + 8].mean() / 255, abs=1e-5)


def test_score_images_bad_inputs(tmp_path):
    write_image(str(tmp_path / "ok.png"))
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(BadImageError, match="bad.png"):
        score_images(MeanModel(), [tmp_path], batch_size=2, image_size=None, progress=False)
    with pytest.warns(RuntimeWarning, match="skipped 1 of 2"):
        out = score_images(MeanModel(), [tmp_path], batch_size=2, image_size=None,
                           skip_bad=True, progress=False)
    assert [os.path.basename(p) for p, _ in out] == ["ok.png"]
    with pytest.raises(FileNotFoundError, match="nope.png"):
        score_images(MeanModel(), [tmp_path / "nope.png"], progress=False)
    with pytest.raises(ValueError, match="scores of shape"):
        score_images(torch.nn.Identity(), [tmp_path / "ok.png"], image_size=4,
                     progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert score_images(MeanModel(), [], progress=False) == []


def test_save_scores_and_table(tmp_path):
    rows = [("a/1.png", 0.25), ("b/long_name.jpg", 0.8125)]
    save_scores(rows, tmp_path / "s.csv", "niqe", higher_is_better=False)
    with open(tmp_path / "s.csv") as f:
        read = list(csv.DictReader(f))
    assert [(r["path"], float(r["score"])) for r in read] == rows
    assert {(r["metric"], r["higher_is_better"]) for r in read} == {("niqe", "false")}
    save_scores(rows, tmp_path / "s.json", "freqalign:dann")
    assert json.loads((tmp_path / "s.json").read_text()) == {
        "metric": "freqalign:dann", "higher_is_better": True,
        "scores": [{"path": p, "score": s} for p, s in rows]}
    with pytest.raises(ValueError, match=".csv or .json"):
        save_scores(rows, tmp_path / "s.txt", "niqe")
    table = format_table(rows).splitlines()
    assert len(table) == 4 and table[3].endswith("0.8125") and table[2].startswith("a/1.png ")
    assert format_table(rows, "niqe", higher_is_better=False).splitlines()[0] == "niqe (lower is better)"
