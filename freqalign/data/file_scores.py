"""Scores of image files: files and folders of any size scored by a model in batches, with a
progress bar, and the score tables written (the engine of ``freqalign score``).

Images are read with the same code as the datasets (RGB, float32 in [0, 1]); the model must
map a (B, 3, h, w) batch to B scores ((B,) or (B, 1)), higher = better.
"""
import csv
import json
import os
import warnings
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..errors import MissingFileError
from .base import center_crop
from .files import IMAGE_EXTENSIONS, BadImageError, fit_size, pil_to_tensor, read_rgb

PathLike = Union[str, os.PathLike]


def expand_paths(paths: Iterable[PathLike]) -> List[str]:
    """Files as given, folders expanded (recursively, sorted) to their image files."""
    out: List[str] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = []
            for dirpath, dirnames, files in os.walk(p):
                dirnames.sort()
                found += [os.path.join(dirpath, f) for f in sorted(files)
                          if f.lower().endswith(IMAGE_EXTENSIONS)]
            if not found:
                warnings.warn(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder {p}",
                              RuntimeWarning, stacklevel=2)
            out += found
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise MissingFileError(f"no such image file or folder: {p}")
    return out


class _ImageList(Dataset):
    """Decoded images (or ``None`` for unreadable ones when ``skip_bad``) with their index:
    resized by ``fit_size(max_side, min_side)``, then centre-cropped to ``image_size``."""

    def __init__(self, paths: Sequence[str], image_size: Optional[int], skip_bad: bool,
                 max_side: Optional[int] = None, min_side: Optional[int] = None):
        self.paths, self.skip_bad = list(paths), skip_bad
        self.max_side, self.min_side = max_side, image_size or min_side
        self.crop = None if image_size is None else center_crop(image_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            img = read_rgb(path, max_side=self.max_side)
        except Exception as err:  # noqa: BLE001 - PIL raises many types on corrupt data
            if self.skip_bad:
                return index, None
            raise BadImageError(f"cannot read image {path} ({type(err).__name__}: {err}); "
                                "pass skip_bad=True (--skip-bad) to skip it") from err
        image = pil_to_tensor(fit_size(img, self.max_side, self.min_side))
        return index, (image if self.crop is None else self.crop(image))


def _collate(items):
    return items


@torch.no_grad()
def score_images(model: torch.nn.Module, paths: Iterable[PathLike], *, batch_size: int = 32,
                 device: Union[str, torch.device] = "cpu", image_size: Optional[int] = 224,
                 num_workers: int = 0, skip_bad: bool = False, progress: bool = True,
                 max_side: Optional[int] = None,
                 min_side: Optional[int] = None) -> List[Tuple[str, float]]:
    """Score the images ``paths`` (files, or folders expanded recursively) with ``model``.

    Each image is read as RGB in [0, 1]; with ``image_size`` its central ``image_size`` square
    is scored (images smaller than that are enlarged first), with ``image_size=None`` the
    whole image (images of equal size share a forward pass). ``max_side`` and ``min_side``
    resize each image first, as ``ImageFileDataset.whole_images`` does (longer side at most
    ``max_side``, shorter side at least ``min_side``). Returns ``[(path, score), ...]``
    in input order; unreadable images raise ``BadImageError`` unless ``skip_bad``, which
    leaves them out and warns with their count. The model is put in eval mode and moved to
    ``device``.
    """
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if image_size is not None and int(image_size) <= 0:
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    files = expand_paths(paths)
    device = torch.device(device)
    model = model.to(device).eval()
    loader = DataLoader(_ImageList(files, image_size, skip_bad, max_side, min_side),
                        batch_size=int(batch_size),
                        shuffle=False, num_workers=int(num_workers), collate_fn=_collate,
                        pin_memory=device.type == "cuda")
    scores = {}
    skipped = []
    with tqdm(total=len(files), desc="scoring", unit="img", disable=not progress) as bar:
        for items in loader:
            good = [(i, img) for i, img in items if img is not None]
            skipped += [i for i, img in items if img is None]
            by_shape = {}
            for i, img in good:
                by_shape.setdefault(tuple(img.shape), []).append((i, img))
            for group in by_shape.values():
                batch = torch.stack([img for _, img in group]).to(device, non_blocking=True)
                out = _as_scores(model(batch), len(group))
                scores.update({i: float(s) for (i, _), s in zip(group, out.tolist())})
            bar.update(len(items))
    if skipped:
        shown = ", ".join(files[i] for i in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} of {len(files)} unreadable images, e.g. {shown}",
                      RuntimeWarning, stacklevel=2)
    return [(files[i], scores[i]) for i in range(len(files)) if i in scores]


def _as_scores(out, n: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor of {n} scores, got {type(out).__name__}")
    out = out.detach().float().cpu()
    if out.shape not in ((n,), (n, 1)):
        raise ValueError(f"the model must return {n} scores of shape ({n},) or ({n}, 1), got "
                         f"{tuple(out.shape)}")
    return out.reshape(n)


def format_table(rows: Sequence[Tuple[str, float]], metric: str = "", higher_is_better: bool = True) -> str:
    """``[(path, score), ...]`` as an aligned two-column text table, under a line naming the
    metric and its direction when ``metric`` is given."""
    width = max([len("path")] + [len(p) for p, _ in rows])
    lines = [f"{metric} ({'higher' if higher_is_better else 'lower'} is better)"] if metric else []
    lines += [f"{'path':<{width}}  score", f"{'-' * width}  ------"]
    lines += [f"{p:<{width}}  {s:.4f}" for p, s in rows]
    return "\n".join(lines)


def save_scores(rows: Sequence[Tuple[str, float]], out: PathLike, metric: str,
                higher_is_better: bool = True) -> None:
    """Write ``[(path, score), ...]`` of ``metric`` to ``out``, chosen by the extension: ``.csv``
    (header ``path,score,metric,higher_is_better``, the last two the same on every row) or
    ``.json`` (``{"metric", "higher_is_better", "scores": [{"path", "score"}, ...]}``)."""
    out = os.fspath(out)
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".csv", ".json"):
        raise ValueError(f"out must end in .csv or .json, got {out!r}")
    with open(out, "w", newline="", encoding="utf-8") as f:
        if ext == ".csv":
            writer = csv.writer(f)
            writer.writerow(["path", "score", "metric", "higher_is_better"])
            direction = str(bool(higher_is_better)).lower()
            writer.writerows([p, repr(float(s)), metric, direction] for p, s in rows)
        else:
            json.dump({"metric": metric, "higher_is_better": bool(higher_is_better),
                       "scores": [{"path": p, "score": float(s)} for p, s in rows]}, f, indent=1)
            f.write("\n")


__all__ = ["score_images", "expand_paths", "format_table", "save_scores"]
