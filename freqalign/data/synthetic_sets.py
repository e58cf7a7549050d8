"""Loaders for synthetically distorted IQA datasets: KADID-10k, LIVE (release 2), CSIQ, TID2013.

Each opens the dataset as its authors release it (see docs/datasets.md), normalises labels to
[0, 1] with higher = better (DMOS inverted) and sets ``groups`` to the reference image, so
``split_by_group`` never puts two distortions of one photo on both sides of a split.
"""
import re
from pathlib import Path

import numpy as np

from .files import DatasetLayoutError, ImageFileDataset, layout_message
from .label_files import (FolderIndex, mat_strings, normalise, read_csv, read_mat,
                          require_dir, require_file, require_root, to_float)
from .registry import register_dataset

KADID_LAYOUT = """\
  ROOT/dmos.csv        columns dist_img, ref_img, dmos, var (dmos: 1-5, higher = better)
  ROOT/images/         the images named in dist_img (I01_01_01.png ...)"""


@register_dataset("kadid10k")
def open_kadid10k(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """KADID-10k: 10,125 images, 81 references x 25 distortions x 5 levels."""
    name, layout = "kadid10k", KADID_LAYOUT
    root = require_root(name, root, layout)
    csv_path = root / "dmos.csv"
    rows = read_csv(name, csv_path, layout, ["dist_img", "ref_img", "dmos"])
    images = FolderIndex(require_dir(name, root / "images", layout))
    dmos = to_float(name, csv_path, layout, [r["dmos"] for r in rows], "dmos")
    return ImageFileDataset(name, [images.find(r["dist_img"]) for r in rows],
                            normalise(dmos, 1.0, 5.0, higher_is_better=True),
                            [r["ref_img"] for r in rows], layout=layout,
                            image_size=image_size, skip_bad=skip_bad)


LIVE_LAYOUT = """\
  ROOT/dmos_realigned.mat   keys dmos_new (or dmos), orgs   [or ROOT/dmos.mat: dmos, orgs]
  ROOT/refnames_all.mat     key refnames_all (reference name of each of the 982 entries)
  ROOT/jp2k/img1.bmp .. img227.bmp, jpeg/ (233), wn/ (174), gblur/ (174), fastfading/ (174)
  DMOS 0-100, lower = better; entries with orgs == 1 (the references) are excluded"""

# The order and sizes of LIVE release 2's DMOS vector (982 = 227 + 233 + 174 * 3).
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


@register_dataset("live")
def open_live(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """LIVE IQA release 2: 779 distorted images of 29 references (references excluded)."""
    name, layout = "live", LIVE_LAYOUT
    root = require_root(name, root, layout)
    realigned = root / "dmos_realigned.mat"
    mat_path = realigned if realigned.is_file() else root / "dmos.mat"
    if not mat_path.is_file():
        raise DatasetLayoutError(layout_message(
            name, f"label file not found: {realigned} (or {root / 'dmos.mat'})", layout))
    mat = read_mat(name, mat_path, layout, [("dmos_new", "dmos"), "orgs"])
    dmos = np.asarray(mat["dmos_new"], dtype=np.float64).reshape(-1)
    orgs = np.asarray(mat["orgs"]).reshape(-1).astype(bool)
    refs_path = root / "refnames_all.mat"
    refnames = mat_strings(read_mat(name, refs_path, layout, ["refnames_all"])["refnames_all"])
    expected = sum(n for _, n in LIVE_FOLDERS)
    if not len(dmos) == len(orgs) == len(refnames) == expected:
        raise DatasetLayoutError(layout_message(
            name, f"{mat_path.name} has {len(dmos)} DMOS and {len(orgs)} orgs entries and "
                  f"{refs_path.name} {len(refnames)} names; LIVE release 2 has {expected}",
            layout))
    paths = []
    for folder, count in LIVE_FOLDERS:
        require_dir(name, root / folder, layout)
        paths += [str(root / folder / f"img{i}.bmp") for i in range(1, count + 1)]
    keep = np.flatnonzero(~orgs)
    return ImageFileDataset(name, [paths[i] for i in keep],
                            normalise(dmos[keep], 0.0, 100.0, higher_is_better=False),
                            [refnames[i] for i in keep], layout=layout,
                            image_size=image_size, skip_bad=skip_bad,
                            info={"distortion": np.repeat([f for f, _ in LIVE_FOLDERS],
                                                          [n for _, n in LIVE_FOLDERS])[keep]})


CSIQ_LAYOUT = """\
  ROOT/csiq_label.txt   lines "NAME DMOS" (e.g. "1600.AWGN.1.png 0.061989"; DMOS 0-1, lower =
                        better), or ROOT/meta_info_CSIQDataset.csv (pyiqa: ref_name, dist_name,
                        dmos)
  ROOT/dst_imgs_all/ or ROOT/dst_imgs/   the distorted images, flat or in per-distortion
                        subfolders (awgn/, blur/, contrast/, fnoise/, jpeg/, jpeg2000/)
  the reference of NAME is the text before its first '.' (1600.AWGN.1.png -> 1600)"""


@register_dataset("csiq")
def open_csiq(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """CSIQ: 866 distorted images of 30 references, DMOS in [0, 1]."""
    name, layout = "csiq", CSIQ_LAYOUT
    root = require_root(name, root, layout)
    txt, meta = root / "csiq_label.txt", root / "meta_info_CSIQDataset.csv"
    if txt.is_file():
        names, values = [], []
        for lineno, line in enumerate(txt.read_text(encoding="utf-8-sig").splitlines(), 1):
            words = line.split()
            if not words:
                continue
            if len(words) < 2:
                raise DatasetLayoutError(layout_message(
                    name, f"{txt}: line {lineno} is not 'NAME DMOS': {line!r}", layout))
            names.append(words[0])
            values.append(words[1])
        label_path = txt
    elif meta.is_file():
        rows = read_csv(name, meta, layout, ["dist_name", "dmos"])
        names, values, label_path = [r["dist_name"] for r in rows], [r["dmos"] for r in rows], meta
    else:
        raise DatasetLayoutError(layout_message(
            name, f"label file not found: {txt} (or {meta})", layout))
    folder = next((root / d for d in ("dst_imgs_all", "dst_imgs") if (root / d).is_dir()), None)
    if folder is None:
        raise DatasetLayoutError(layout_message(
            name, f"image folder not found: {root / 'dst_imgs_all'} (or {root / 'dst_imgs'})",
            layout))
    images = FolderIndex(folder, recursive=True)
    dmos = to_float(name, label_path, layout, values, "DMOS")
    groups = [Path(n).name.split(".")[0].lower() for n in names]
    return ImageFileDataset(name, [images.find(Path(n).name) for n in names],
                            normalise(dmos, 0.0, 1.0, higher_is_better=False), groups,
                            layout=layout, image_size=image_size, skip_bad=skip_bad)


TID2013_LAYOUT = """\
  ROOT/mos_with_names.txt   lines "MOS NAME" (e.g. "5.51429 i01_01_1.bmp"; MOS 0-9, higher =
                            better)
  ROOT/distorted_images/    the images named there (names matched case-insensitively)
  the reference of NAME is its prefix i01 .. i25"""

_TID_REF = re.compile(r"^(i\d\d)_", re.IGNORECASE)


@register_dataset("tid2013")
def open_tid2013(root, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """TID2013: 3,000 distorted images of 25 references, MOS in [0, 9]."""
    name, layout = "tid2013", TID2013_LAYOUT
    root = require_root(name, root, layout)
    txt = require_file(name, root / "mos_with_names.txt", layout)
    values, names, groups = [], [], []
    for lineno, line in enumerate(txt.read_text(encoding="utf-8-sig").splitlines(), 1):
        words = line.split()
        if not words:
            continue
        match = _TID_REF.match(words[-1]) if len(words) == 2 else None
        if match is None:
            raise DatasetLayoutError(layout_message(
                name, f"{txt}: line {lineno} is not 'MOS iNN_TT_L.bmp': {line!r}", layout))
        values.append(words[0])
        names.append(words[1])
        groups.append(match.group(1).lower())
    images = FolderIndex(require_dir(name, root / "distorted_images", layout))
    mos = to_float(name, txt, layout, values, "MOS")
    return ImageFileDataset(name, [images.find(n) for n in names],
                            normalise(mos, 0.0, 9.0, higher_is_better=True), groups,
                            layout=layout, image_size=image_size, skip_bad=skip_bad)
