"""Datasets of image files on disk, read lazily with PIL (docs/design.md section 5).

``ImageFileDataset`` holds paths, normalised scores and groups; an image is decoded only when
it is indexed. Missing files are found when the dataset is built (one ``stat`` per file);
unreadable files are found either then (``skip_bad=True``: every image is decoded once, with
a progress bar, and the bad ones are dropped with a warning) or when first read (otherwise:
one error naming the file, the dataset's expected layout and the ``--skip-bad`` option).
"""
import os
import warnings
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from ..errors import DatasetError
from .base import IQADataset, center_crop, check_labels

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".gif", ".ppm")


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """A dataset root, label file or image is missing, or a label file has the wrong form."""


class BadImageError(DatasetError, OSError):
    """An image file exists but cannot be decoded."""


def layout_message(name: str, problem: str, layout: str) -> str:
    """``problem`` followed by the layout that dataset ``name`` expects."""
    return f"{name}: {problem}\nexpected layout:\n{layout.rstrip()}"


SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # grayscale of more than 8 bits
WHITE = (255, 255, 255, 255)


def upright_rgb(img: Image.Image) -> Image.Image:
    """``img`` as the 8-bit RGB image a viewer shows: turned by its EXIF orientation, then
    grayscale (1, L) repeated in R, G and B; 16-bit grayscale (I;16, I) scaled by 255/65535;
    palette images through their palette; CMYK by PIL's formula (no ICC colour management);
    and images with alpha (RGBA, LA, PA, a transparent palette entry) composited on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in SIXTEEN_BIT:
        levels = np.clip(np.asarray(img, dtype=np.float64) * (255 / 65535), 0, 255)
        img = Image.fromarray(np.round(levels).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = Image.alpha_composite(Image.new("RGBA", img.size, WHITE), img.convert("RGBA"))
    return img.convert("RGB")


def read_rgb(path: str, max_short_side: Optional[int] = None,
             max_side: Optional[int] = None) -> Image.Image:
    """Decode ``path`` to an upright RGB PIL image (``upright_rgb``; raises whatever PIL raises
    on bad files, and PIL's ``DecompressionBombError`` for images of more than
    ``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels).

    ``max_short_side`` shrinks larger images (bicubic) so that their shorter side is that long.
    Either bound lets a JPEG be decoded at the smallest of libjpeg's 1/2, 1/4 and 1/8 DCT
    scales that still leaves the image at least as large as the bounds ask for (what
    ``fit_size`` then shrinks it to): a 1024x768 KonIQ photo read for ``max_side=512`` is
    decoded straight to 512x384, 2.4x faster than a full decode and a bicubic resize
    (``benchmarks/data/loader_throughput.py``). Other formats decode in full.
    """
    with Image.open(path) as img:
        scale = 1.0
        if max_short_side is not None and min(img.size) > max_short_side:
            scale = max_short_side / min(img.size)
        if max_side is not None and max(img.size) > max_side:
            scale = min(scale, max_side / max(img.size))
        if scale < 1.0:
            img.draft("RGB", (int(np.ceil(img.width * scale)), int(np.ceil(img.height * scale))))
        img.load()
        img = upright_rgb(img)
    if max_short_side is not None and min(img.size) > max_short_side:
        img = resize_shorter(img, max_short_side)
    return img


def _decodes(path: str) -> bool:
    """True when ``path`` decodes fully; JPEGs are decoded at 1/8 scale to save time."""
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return False


def resize_shorter(img: Image.Image, side: int) -> Image.Image:
    """Resize (bicubic, antialiased) so that the shorter side is ``side`` pixels."""
    w, h = img.size
    scale = side / min(w, h)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return img if size == (w, h) else img.resize(size, Image.BICUBIC)


def fit_size(img: Image.Image, max_side: Optional[int] = None,
             min_side: Optional[int] = None) -> Image.Image:
    """``img`` shrunk (bicubic, antialiased) so that its longer side is at most ``max_side``
    (1024x768 -> 512x384 for 512), then enlarged so that its shorter side is at least
    ``min_side``; ``None`` leaves that side alone."""
    w, h = img.size
    if max_side is not None and max(w, h) > max_side:
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    if min_side is not None and min(img.size) < min_side:
        img = resize_shorter(img, min_side)
    return img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor (3, h, w) in [0, 1]."""
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


class ImageFileDataset(IQADataset):
    """Images read lazily from ``paths`` with normalised ``scores`` and ``groups``.

    ``max_short_side`` (pixels), when given, shrinks larger images so that their shorter side
    is that long (SPAQ's phone photos); with ``image_size`` an image whose shorter side is
    below ``image_size`` is enlarged to it, and the transform is ``center_crop(image_size)``
    (set ``transform`` to a random crop for training, or call ``whole_images``
    when the training loop crops the images itself).
    ``layout`` is the short text shown in every error. Extra per-row metadata can be kept in
    ``info`` (a dict of (N,) arrays), and a dataset's own split in ``official_split``
    (split name -> row indices), both filtered together with the rows by ``skip_bad``.
    """

    def __init__(self, name: str, paths: Sequence[str], scores, groups, *, layout: str,
                 image_size: Optional[int] = None, max_short_side: Optional[int] = None,
                 skip_bad: bool = False, info: Optional[dict] = None,
                 official_split: Optional[dict] = None):
        self.name = name
        self.layout = layout
        paths = [os.fspath(p) for p in paths]
        scores, groups = check_labels(scores, groups, len(paths))
        if image_size is not None and int(image_size) <= 0:
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        if max_short_side is not None and int(max_short_side) <= 0:
            raise ValueError(f"max_short_side must be a positive int or None, got "
                             f"{max_short_side!r}")
        if not paths:
            raise DatasetLayoutError(layout_message(name, "the label file lists no images",
                                                    layout))
        keep = self._check_files(paths, skip_bad)
        self.paths = [paths[i] for i in keep]
        self.scores, self.groups = scores[keep], groups[keep]
        self.info = {k: np.asarray(v)[keep] for k, v in (info or {}).items()}
        self.official_split = None
        if official_split is not None:  # renumber the rows that survived skip_bad
            new_index = np.full(len(paths), -1, dtype=np.int64)
            new_index[keep] = np.arange(len(keep))
            renumbered = {k: new_index[np.asarray(v, dtype=np.int64)]
                          for k, v in official_split.items()}
            self.official_split = {k: v[v >= 0] for k, v in renumbered.items()}
        self.image_size = None if image_size is None else int(image_size)
        self.max_short_side = None if max_short_side is None else int(max_short_side)
        self.max_side = None
        self.transform = None if image_size is None else center_crop(self.image_size)

    def whole_images(self, max_side: Optional[int] = None,
                     min_side: Optional[int] = None) -> "ImageFileDataset":
        """Serve whole images, for a trainer that crops them itself: no centre crop; the
        longer side shrunk to ``max_side`` and the shorter enlarged to ``min_side`` when given
        (``fit_size``). Returns the dataset."""
        self.max_side, self.image_size, self.transform = max_side, min_side, None
        return self

    def _check_files(self, paths, skip_bad: bool) -> np.ndarray:
        missing = [i for i, p in enumerate(paths) if not os.path.isfile(p)]
        if missing and not skip_bad:
            shown = ", ".join(paths[i] for i in missing[:3])
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DatasetLayoutError(layout_message(
                self.name, f"{len(missing)} of {len(paths)} images not found: {shown}{more}",
                self.layout))
        bad = []
        if skip_bad:
            missing_set = set(missing)
            todo = [i for i in range(len(paths)) if i not in missing_set]
            for i in tqdm(todo, desc=f"{self.name}: checking images", unit="img",
                          disable=len(todo) < 200, leave=False):
                if not _decodes(paths[i]):
                    bad.append(i)
        dropped = sorted(set(missing) | set(bad))
        if dropped:
            shown = ", ".join(os.path.basename(paths[i]) for i in dropped[:3])
            warnings.warn(f"{self.name}: skipped {len(dropped)} of {len(paths)} images "
                          f"({len(missing)} missing, {len(bad)} unreadable), e.g. {shown}",
                          RuntimeWarning, stacklevel=3)
        if len(dropped) == len(paths):
            raise DatasetLayoutError(layout_message(
                self.name, f"none of the {len(paths)} images could be read", self.layout))
        self.skipped = len(dropped)
        return np.setdiff1d(np.arange(len(paths)), np.asarray(dropped, dtype=np.int64))

    def load_image(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            img = read_rgb(path, self.max_short_side, self.max_side)
        except FileNotFoundError as err:
            raise DatasetLayoutError(layout_message(
                self.name, f"image not found: {path}", self.layout)) from err
        except Exception as err:  # noqa: BLE001 - PIL raises many types on corrupt data
            raise BadImageError(
                f"{self.name}: cannot read image {path} ({type(err).__name__}: {err}); "
                "pass skip_bad=True (--skip-bad) to skip unreadable images\n"
                f"expected layout:\n{self.layout.rstrip()}") from err
        return pil_to_tensor(fit_size(img, self.max_side, self.image_size))


__all__ = ["ImageFileDataset", "DatasetLayoutError", "BadImageError", "IMAGE_EXTENSIONS",
           "layout_message", "upright_rgb", "read_rgb", "resize_shorter", "fit_size", "pil_to_tensor"]
