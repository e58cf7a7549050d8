"""Loaders for label tables: a generic CSV (``csv:FILE``) and pyiqa's meta-info CSVs
(``pyiqa:FILE``).

Options follow the file after a ``?``, joined by ``&``, e.g.
``csv:/data/mine.csv?higher_is_better=false&range=0,100``. Image paths in the table are
relative to the table's folder unless ``root=FOLDER`` is given (or the paths are absolute).
"""
import re
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import DatasetError
from .files import DatasetLayoutError, ImageFileDataset, layout_message
from .label_files import FolderIndex, normalise, parse_options, read_csv, to_float
from .registry import register_dataset

CSV_LAYOUT = """\
  FILE                  a CSV with a header row and columns path, score[, group]
                        (path: relative to FILE's folder or to root=, or absolute;
                        group: content id for disjoint splits, default: the path)
  options after '?':    higher_is_better=true|false (default true; false for DMOS)
                        range=LO,HI (the nominal score range; default [0, 1] when all scores
                        lie there, else their min and max)
                        root=FOLDER (where the image paths start)"""


def _split_spec(name: str, spec, layout: str) -> Tuple[Path, str]:
    if spec is None or str(spec) == "":
        raise DatasetLayoutError(layout_message(
            name, f"no file given: open it as '{name}:FILE'", layout))
    file, _, options = str(spec).partition("?")
    return Path(file).expanduser(), options


def _parse_bool(text: str, key: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", ""):
        return True
    if low in ("0", "false", "no"):
        return False
    raise DatasetError(f"option {key} must be true or false, got {text!r}")


def _parse_range(text: str) -> Tuple[float, float]:
    parts = [p for p in re.split(r"[,:]", text) if p.strip()]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise DatasetError(f"option range must be LO,HI (e.g. range=0,100), got {text!r}") \
            from None
    if not high > low:
        raise DatasetError(f"option range must have LO < HI, got {text!r}")
    return low, high


def _image_root(name, file: Path, options: dict, layout: str) -> Path:
    root = Path(options["root"]).expanduser() if options.get("root") else file.parent
    if not root.is_dir():
        raise DatasetLayoutError(layout_message(name, f"image folder not found: {root}",
                                                layout))
    return root


@register_dataset("csv")
def open_csv(spec, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """A generic table of images and scores (see ``CSV_LAYOUT``)."""
    name, layout = "csv", CSV_LAYOUT
    file, text = _split_spec(name, spec, layout)
    options = parse_options(text, ["higher_is_better", "range", "root"])
    higher = _parse_bool(options.get("higher_is_better", "true"), "higher_is_better")
    rows = read_csv(name, file, layout, ["path", "score"])
    values = to_float(name, file, layout, [r["score"] for r in rows], "score")
    if "range" in options:
        low, high = _parse_range(options["range"])
    elif values.size and values.min() >= 0.0 and values.max() <= 1.0:
        low, high = 0.0, 1.0
    else:
        low, high = float(values.min()), float(values.max())
    images = FolderIndex(_image_root(name, file, options, layout), recursive=False)
    paths = [images.find(r["path"]) for r in rows]
    groups = [r.get("group") or r["path"] for r in rows]
    return ImageFileDataset(f"csv:{file.name}", paths,
                            normalise(values, low, high, higher_is_better=higher), groups,
                            layout=layout, image_size=image_size, skip_bad=skip_bad)


# pyiqa meta-info files we know: name in meta_info_<name>Dataset.csv ->
# (score column, nominal range, higher is better). KADID's column is called dmos but holds
# MOS-like 1-5 ratings (higher = better); LIVE's "mos" column holds DMOS (lower = better).
PYIQA_KNOWN = {
    "KADID10k": ("dmos", (1.0, 5.0), True),
    "KonIQ10k": ("mos", (1.0, 100.0), True),
    "LIVEChallenge": ("mos", (0.0, 100.0), True),
    "SPAQ": ("mos", (0.0, 100.0), True),
    "LIVEIQA": ("mos", (0.0, 100.0), False),
    "CSIQ": ("dmos", (0.0, 1.0), False),
    "TID2013": ("mos", (0.0, 9.0), True),
    "TID2008": ("mos", (0.0, 9.0), True),
    "BID": ("mos", (0.0, 5.0), True),
}
PYIQA_LAYOUT = """\
  FILE                  a pyiqa meta-info CSV, e.g. meta_info_KADID10kDataset.csv: columns
                        [ref_name,] dist_name (or img_name / image_name), the score (mos or
                        dmos)[, std][, split]; known files: """ + ", ".join(PYIQA_KNOWN) + """
  images                under FILE's folder (pyiqa's dataroot_target), or root=FOLDER;
                        names are matched ignoring case, missing extensions are tried
  options after '?':    root=FOLDER, higher_is_better=..., range=LO,HI (needed only for
                        files not listed above)
  groups: ref_name when present, else the image; LIVEChallenge's t1..t7 are excluded;
  KonIQ10k's split column becomes dataset.official_split"""

_PYIQA_NAME = re.compile(r"^meta_info_(.+?)(?:Dataset)?$", re.IGNORECASE)
_NAME_COLUMNS = ("dist_name", "img_name", "image_name", "name")


@register_dataset("pyiqa")
def open_pyiqa(spec, *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
    """A dataset described by one of pyiqa's meta-info CSV files (see ``PYIQA_LAYOUT``)."""
    name, layout = "pyiqa", PYIQA_LAYOUT
    file, text = _split_spec(name, spec, layout)
    options = parse_options(text, ["higher_is_better", "range", "root"])
    rows = read_csv(name, file, layout)
    header = list(rows[0]) if rows else []
    match = _PYIQA_NAME.match(file.stem)
    family = match.group(1) if match else file.stem
    known = PYIQA_KNOWN.get(family)
    if known is not None:
        score_col, (low, high), higher = known
    else:
        score_col = next((c for c in ("mos", "dmos", "score") if c in header), None)
        if score_col is None:
            raise DatasetLayoutError(layout_message(
                name, f"{file} has no mos, dmos or score column; its columns are {header}",
                layout))
        higher = score_col != "dmos"
        low = high = None
    if "higher_is_better" in options:
        higher = _parse_bool(options["higher_is_better"], "higher_is_better")
    if "range" in options:
        low, high = _parse_range(options["range"])
    name_col = next((c for c in _NAME_COLUMNS if c in header), None)
    if name_col is None or score_col not in header:
        raise DatasetLayoutError(layout_message(
            name, f"{file} needs an image-name column ({' / '.join(_NAME_COLUMNS)}) and a "
                  f"{score_col} column; its columns are {header}", layout))
    if family == "LIVEChallenge":
        rows = [r for r in rows if not re.match(r"^t[1-7]\.bmp$", Path(r[name_col]).name, re.I)]
    values = to_float(name, file, layout, [r[score_col] for r in rows], score_col)
    if low is None:
        low, high = float(values.min()), float(values.max())
        warnings.warn(f"pyiqa: {file.name} is not a known pyiqa meta file; scores normalised "
                      f"by their own range [{low:g}, {high:g}], "
                      f"{'higher' if higher else 'lower'} = better (pass range=LO,HI and "
                      f"higher_is_better= to fix them)", RuntimeWarning, stacklevel=2)
    images = FolderIndex(_image_root(name, file, options, layout), recursive=True)
    names = [r[name_col] for r in rows]
    groups = [r.get("ref_name") or n for r, n in zip(rows, names)]
    return ImageFileDataset(f"pyiqa:{family}", [images.find(n) for n in names],
                            normalise(values, low, high, higher_is_better=higher), groups,
                            layout=layout, image_size=image_size, skip_bad=skip_bad,
                            official_split=_split_column(rows))


def _split_column(rows) -> Optional[dict]:
    """pyiqa's ``split`` column (training / validation / test) as row indices, if present."""
    if not rows or "split" not in rows[0]:
        return None
    names = {"training": "train", "train": "train", "validation": "val", "val": "val",
             "test": "test"}
    out = {}
    for i, r in enumerate(rows):
        which = names.get(str(r["split"]).strip().lower())
        if which is not None:
            out.setdefault(which, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()} or None
