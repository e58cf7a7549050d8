"""Readers for the label files of public IQA datasets (CSV, text, .mat, .xlsx).

Every reader takes the dataset ``name`` and its ``layout`` text so that a missing file, a
missing column or key, or an unparsable value gives one error naming the file and the layout
the loader expects.
"""
import csv
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from ..errors import DatasetError
from .files import IMAGE_EXTENSIONS, DatasetLayoutError, layout_message


def require_root(name: str, root, layout: str) -> Path:
    """``root`` as a ``Path``; an error naming ``name:ROOT`` when absent or not a folder."""
    if root is None or str(root) == "":
        raise DatasetLayoutError(layout_message(
            name, f"no dataset root given: open it as '{name}:ROOT'", layout))
    path = Path(os.path.expanduser(str(root)))
    if not path.is_dir():
        raise DatasetLayoutError(layout_message(name, f"dataset root not found: {path}",
                                                layout))
    return path


def require_file(name: str, path: Path, layout: str, what: str = "label file") -> Path:
    if not path.is_file():
        raise DatasetLayoutError(layout_message(name, f"{what} not found: {path}", layout))
    return path


def require_dir(name: str, path: Path, layout: str, what: str = "image folder") -> Path:
    if not path.is_dir():
        raise DatasetLayoutError(layout_message(name, f"{what} not found: {path}", layout))
    return path


def _canon(text) -> str:
    return " ".join(str(text).split()).lower()


def _keyed_rows(name, path, layout, header, rows, required) -> List[Dict]:
    """Rows as dicts keyed by the header; ``required`` columns are matched ignoring case and
    repeated spaces and are also available under the names given in ``required``."""
    header = ["" if h is None else " ".join(str(h).split()) for h in header]
    lookup = {_canon(h): i for i, h in reversed(list(enumerate(header)))}
    missing = [c for c in required if _canon(c) not in lookup]
    if missing:
        raise DatasetLayoutError(layout_message(
            name, f"{path} lacks column(s) {missing}; its columns are {header}", layout))
    out = []
    for row in rows:
        row = list(row) + [None] * (len(header) - len(row))
        item = dict(zip(header, row))
        item.update({c: row[lookup[_canon(c)]] for c in required})
        out.append(item)
    return out


def read_csv(name: str, path: Path, layout: str, required: Iterable[str] = ()) -> List[Dict]:
    """Rows of a CSV file with a header row, as dicts of stripped strings."""
    require_file(name, path, layout)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = [[v.strip() for v in row] for row in reader if any(v.strip() for v in row)]
    return _keyed_rows(name, path, layout, header, rows, list(required))


def read_xlsx(name: str, path: Path, layout: str, required: Iterable[str] = ()) -> List[Dict]:
    """Rows of the first sheet of an .xlsx file whose first non-empty row is the header."""
    require_file(name, path, layout)
    try:
        import openpyxl
    except ImportError as err:
        raise ImportError(f"{name}: reading {path} needs openpyxl (pip install openpyxl)") \
            from err
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises several types on bad files
        raise DatasetLayoutError(layout_message(
            name, f"cannot read {path} as .xlsx ({type(err).__name__}: {err})", layout)) from err
    try:
        rows = [r for r in book.worksheets[0].iter_rows(values_only=True)
                if any(v is not None and str(v).strip() != "" for v in r)]
    finally:
        book.close()
    if not rows:
        raise DatasetLayoutError(layout_message(name, f"{path} is empty", layout))
    return _keyed_rows(name, path, layout, rows[0], rows[1:], list(required))


def read_mat(name: str, path: Path, layout: str, keys: Iterable) -> Dict[str, np.ndarray]:
    """The arrays ``keys`` of a MATLAB .mat file (scipy.io.loadmat).

    A key may be a tuple of alternatives, e.g. ``("dmos_new", "dmos")``: the first present
    one is returned under the first name.
    """
    import scipy.io

    require_file(name, path, layout)
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as err:  # noqa: BLE001 - loadmat raises several types on bad files
        raise DatasetLayoutError(layout_message(
            name, f"cannot read {path} as a .mat file ({type(err).__name__}: {err})",
            layout)) from err
    found = sorted(k for k in data if not k.startswith("__"))
    out = {}
    for key in keys:
        options = (key,) if isinstance(key, str) else tuple(key)
        hit = next((k for k in options if k in data), None)
        if hit is None:
            wanted = " or ".join(repr(k) for k in options)
            raise DatasetLayoutError(layout_message(
                name, f"{path} lacks key {wanted}; its keys are {found}", layout))
        out[options[0]] = data[hit]
    return out


def mat_strings(cell: np.ndarray) -> List[str]:
    """A MATLAB cell array of strings (as loaded by scipy) -> list of str, in storage order."""
    out = []
    for item in np.asarray(cell, dtype=object).reshape(-1, order="F"):
        while isinstance(item, np.ndarray):
            item = item.reshape(-1)[0] if item.size else ""
        out.append(str(item).strip())
    return out


def to_float(name: str, path: Path, layout: str, values, what: str) -> np.ndarray:
    """``values`` as float64; an error naming the first unparsable entry."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise DatasetLayoutError(layout_message(
                name, f"{path}: row {i + 1} has a non-numeric {what}: {v!r}", layout)) from None
    if not np.all(np.isfinite(out)):
        bad = int(np.flatnonzero(~np.isfinite(out))[0])
        raise DatasetLayoutError(layout_message(
            name, f"{path}: row {bad + 1} has a non-finite {what}", layout))
    return out


def normalise(values, low: float, high: float, higher_is_better: bool = True) -> np.ndarray:
    """Map scores on the nominal scale [low, high] to [0, 1], higher = better.

    When a value falls outside the nominal scale the scale is widened to include it (never
    clipped), so the map stays strictly increasing (decreasing for DMOS) and ties never appear.
    """
    values = np.asarray(values, dtype=np.float64)
    low = min(float(low), float(values.min())) if values.size else float(low)
    high = max(float(high), float(values.max())) if values.size else float(high)
    if not high > low:
        raise DatasetError(f"empty score range [{low}, {high}]")
    unit = (values - low) / (high - low)
    return unit if higher_is_better else 1.0 - unit


class FolderIndex:
    """Case-insensitive lookup of file names in a folder (optionally its subfolders too).

    Some releases list names in a different case than the files on disk (TID2013's
    ``I01_11_1.BMP`` next to ``i01_01_1.bmp``), or without the extension (pyiqa's LIVE
    ``jp2k/img2``); an exact match is preferred.
    """

    def __init__(self, folder: Path, recursive: bool = False):
        self.folder = Path(folder)
        self._by_rel: Dict[str, str] = {}
        self._by_base: Dict[str, str] = {}
        if recursive:
            walker = os.walk(self.folder)
        else:
            walker = [(str(self.folder), [], [f for f in os.listdir(self.folder)
                                              if os.path.isfile(self.folder / f)])]
        for dirpath, _, files in walker:
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                rel = os.path.relpath(full, self.folder).replace(os.sep, "/").lower()
                self._by_rel.setdefault(rel, full)
                self._by_base.setdefault(f.lower(), full)

    def find(self, name: str) -> str:
        """The path of ``name`` (relative to the folder): exact, else ignoring case, else with
        an image extension added when ``name`` has none, else (for a bare file name) found in
        any subfolder. When nothing matches, the exact path, which the caller's existence
        check then reports as missing."""
        exact = self.folder / name
        if exact.is_file():
            return str(exact)
        key = name.replace("\\", "/").lower()
        candidates = [key]
        if os.path.splitext(key)[1] not in IMAGE_EXTENSIONS:
            candidates += [key + ext for ext in IMAGE_EXTENSIONS]
        for k in candidates:
            hit = self._by_rel.get(k) or ("/" not in k and self._by_base.get(k))
            if hit:
                return hit
        return str(exact)


def parse_options(text: Optional[str], allowed: Iterable[str]) -> Dict[str, str]:
    """``"a=1&b=x"`` -> ``{"a": "1", "b": "x"}``; unknown keys raise ``DatasetError``."""
    out: Dict[str, str] = {}
    if not text:
        return out
    allowed = list(allowed)
    for part in text.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in allowed:
            raise DatasetError(f"unknown option {key!r}; allowed options: {allowed}")
        out[key] = value.strip()
    return out
