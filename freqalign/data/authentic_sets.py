"""Loaders for authentically distorted IQA datasets: KonIQ-10k, LIVE Challenge, SPAQ, BID.

Each opens the dataset as its authors release it (see docs/datasets.md) and normalises MOS to
[0, 1], higher = better. Every image is its own content, so ``groups`` is the image name.
"""
import re
from pathlib import Path

import numpy as np

from .files import DatasetLayoutError, ImageFileDataset, layout_message
from .label_files import (FolderIndex, mat_strings, normalise, read_csv, read_mat, read_xlsx,
                          require_dir, require_root, to_float)
from .registry import register_dataset

KONIQ_SCORES = "koniq10k_scores_and_distributions.csv"
KONIQ_SETS = "koniq10k_distributions_sets.csv"
KONIQ_FOLDERS = ("1024x768", "512x384")
KONIQ_LAYOUT = f"""\
  ROOT/{KONIQ_SCORES}   columns image_name, c1..c5, c_total, MOS (1-5), SD,
                        MOS_zscore
  ROOT/{KONIQ_SETS}     optional: columns image_name, ..., MOS (1-100), SD, set (training /
                        validation / test), the official split; used for the labels too when
                        the scores file is absent
  ROOT/1024x768/ or ROOT/512x384/   the images (1024x768 preferred when both exist; give
                        ROOT/512x384 as the root to use the smaller ones)"""

# KonIQ's split names -> ours (the keys of ``official_split``).
KONIQ_SPLITS = {"training": "train", "validation": "val", "test": "test"}


@register_dataset("koniq10k")
def open_koniq10k(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """KonIQ-10k: 10,073 in-the-wild photos, MOS from 1-5 ratings.

    The official split, when ``koniq10k_distributions_sets.csv`` is present, is in
    ``dataset.official_split`` (``{"train", "val", "test"}`` -> row indices).
    """
    name, layout = "koniq10k", KONIQ_LAYOUT
    root = require_root(name, root, layout)
    image_dir = None
    if root.name in KONIQ_FOLDERS and not (root / KONIQ_SCORES).is_file() \
            and not (root / KONIQ_SETS).is_file():
        root, image_dir = root.parent, root
    scores_path, sets_path = root / KONIQ_SCORES, root / KONIQ_SETS
    sets = read_csv(name, sets_path, layout, ["image_name", "MOS", "set"]) \
        if sets_path.is_file() else None
    if scores_path.is_file():
        rows = read_csv(name, scores_path, layout, ["image_name", "MOS"])
        mos = to_float(name, scores_path, layout, [r["MOS"] for r in rows], "MOS")
        scores = normalise(mos, 1.0, 5.0)
    elif sets is not None:
        rows = sets
        mos = to_float(name, sets_path, layout, [r["MOS"] for r in rows], "MOS")
        scores = normalise(mos, 1.0, 100.0)
    else:
        raise DatasetLayoutError(layout_message(
            name, f"label file not found: {scores_path} (or {sets_path})", layout))
    if image_dir is None:
        image_dir = next((root / d for d in KONIQ_FOLDERS if (root / d).is_dir()), None)
        if image_dir is None:
            raise DatasetLayoutError(layout_message(
                name, f"image folder not found: {root / KONIQ_FOLDERS[0]} (or "
                      f"{root / KONIQ_FOLDERS[1]})", layout))
    names = [r["image_name"] for r in rows]
    split = None
    if sets is not None:
        split = _koniq_split(name, sets_path, layout, names, sets)
    images = FolderIndex(image_dir)
    return ImageFileDataset(name, [images.find(n) for n in names], scores, names,
                            layout=layout, image_size=image_size, skip_bad=skip_bad,
                            official_split=split)


def _koniq_split(name, path, layout, names, sets) -> dict:
    row_of = {n: i for i, n in enumerate(names)}
    split = {ours: [] for ours in KONIQ_SPLITS.values()}
    for r in sets:
        which = KONIQ_SPLITS.get(str(r["set"]).strip().lower())
        if which is None:
            raise DatasetLayoutError(layout_message(
                name, f"{path}: image {r['image_name']} has set {r['set']!r}; expected one of "
                      f"{sorted(KONIQ_SPLITS)}", layout))
        if r["image_name"] in row_of:
            split[which].append(row_of[r["image_name"]])
    return {k: np.asarray(sorted(v), dtype=np.int64) for k, v in split.items()}


LIVEC_LAYOUT = """\
  ROOT/Data/AllImages_release.mat   key AllImages_release (cell array of image names)
  ROOT/Data/AllMOS_release.mat      key AllMOS_release (MOS 0-100, same order)
  ROOT/Images/                      the images (e.g. 100.bmp)
  the 7 training images t1.bmp .. t7.bmp (the first 7 entries of the release, kept in
  Images/trainingImages/) are excluded, as is customary: 1,162 images remain"""

_LIVEC_TRAINING = re.compile(r"^t[1-7]\.bmp$", re.IGNORECASE)


@register_dataset("livec")
def open_livec(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """LIVE In the Wild Image Quality Challenge (CLIVE): 1,162 photos, MOS 0-100."""
    name, layout = "livec", LIVEC_LAYOUT
    root = require_root(name, root, layout)
    names_path = root / "Data" / "AllImages_release.mat"
    mos_path = root / "Data" / "AllMOS_release.mat"
    names = mat_strings(read_mat(name, names_path, layout,
                                 ["AllImages_release"])["AllImages_release"])
    mos = np.asarray(read_mat(name, mos_path, layout, ["AllMOS_release"])["AllMOS_release"],
                     dtype=np.float64).reshape(-1)
    if len(names) != len(mos):
        raise DatasetLayoutError(layout_message(
            name, f"{names_path.name} lists {len(names)} images but {mos_path.name} has "
                  f"{len(mos)} scores", layout))
    keep = [i for i, n in enumerate(names) if not _LIVEC_TRAINING.match(Path(n).name)]
    images = FolderIndex(require_dir(name, root / "Images", layout))
    return ImageFileDataset(name, [images.find(names[i]) for i in keep],
                            normalise(mos[keep], 0.0, 100.0), [names[i] for i in keep],
                            layout=layout, image_size=image_size, skip_bad=skip_bad)


SPAQ_XLSX = "MOS and Image attribute scores.xlsx"
SPAQ_RESIZE = 512
SPAQ_LAYOUT = f"""\
  ROOT/Annotations/{SPAQ_XLSX}   columns Image name, MOS (0-100), and
                        the attribute scores (Brightness, Colorfulness, ...)
  ROOT/TestImage/       the images (00001.jpg ...); larger ones are shrunk on reading so
                        that the shorter side is {SPAQ_RESIZE} px, as in the SPAQ paper"""


@register_dataset("spaq")
def open_spaq(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """SPAQ: 11,125 smartphone photos, MOS 0-100."""
    name, layout = "spaq", SPAQ_LAYOUT
    root = require_root(name, root, layout)
    xlsx = root / "Annotations" / SPAQ_XLSX
    rows = read_xlsx(name, xlsx, layout, ["Image name", "MOS"])
    rows = [r for r in rows if r["Image name"] is not None and str(r["Image name"]).strip()]
    names = [str(r["Image name"]).strip() for r in rows]
    mos = to_float(name, xlsx, layout, [r["MOS"] for r in rows], "MOS")
    images = FolderIndex(require_dir(name, root / "TestImage", layout))
    return ImageFileDataset(name, [images.find(n) for n in names], normalise(mos, 0.0, 100.0),
                            names, layout=layout, image_size=image_size, max_short_side=SPAQ_RESIZE,
                            skip_bad=skip_bad)


BID_LAYOUT = """\
  ROOT/DatabaseGrades.xlsx   columns Image Number, Average Subjective Score (0-5)
  ROOT/ImageDatabase/DatabaseImage0001.JPG ...   (the images may also sit directly in ROOT)"""


@register_dataset("bid")
def open_bid(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """BID (Blurred Image Database): 586 photos, mean scores 0-5."""
    name, layout = "bid", BID_LAYOUT
    root = require_root(name, root, layout)
    xlsx = root / "DatabaseGrades.xlsx"
    rows = read_xlsx(name, xlsx, layout, ["Image Number", "Average Subjective Score"])
    rows = [r for r in rows if r["Image Number"] is not None
            and str(r["Image Number"]).strip() != ""]
    numbers = to_float(name, xlsx, layout, [r["Image Number"] for r in rows], "Image Number")
    score = to_float(name, xlsx, layout, [r["Average Subjective Score"] for r in rows],
                     "Average Subjective Score")
    folder = root / "ImageDatabase" if (root / "ImageDatabase").is_dir() else root
    images = FolderIndex(folder)
    names = [f"DatabaseImage{int(n):04d}.JPG" for n in numbers]
    return ImageFileDataset(name, [images.find(n) for n in names], normalise(score, 0.0, 5.0),
                            names, layout=layout, image_size=image_size, skip_bad=skip_bad)
