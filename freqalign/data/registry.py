"""Dataset registry: ``open_dataset("name")`` or ``open_dataset("name:ROOT")``.

A loader is registered with ``@register_dataset("name")`` and is called as
``loader(root, image_size=..., cache_dir=..., seed=..., skip_bad=...)`` where ``root`` is the
text after the first ``:`` of the spec (``None`` when absent). It returns an ``IQADataset``.
Modules that register loaders are listed in ``LOADER_MODULES`` at the bottom of this file and
imported on first use, so ``import freqalign`` stays cheap.
"""
import importlib
from typing import Callable, Dict, Optional

from ..errors import DatasetError
from .base import IQADataset

_LOADERS: Dict[str, Callable[..., IQADataset]] = {}


def register_dataset(name: str):
    """Decorator: register ``fn(root, *, image_size, cache_dir, seed, skip_bad)`` as ``name``."""
    if not name or ":" in name:
        raise ValueError(f"dataset name must be non-empty and contain no ':', got {name!r}")

    def wrap(fn):
        if name in _LOADERS and _LOADERS[name] is not fn:
            raise ValueError(f"dataset {name!r} is already registered")
        _LOADERS[name] = fn
        return fn

    return wrap


def _import_loaders() -> None:
    for module in LOADER_MODULES:
        importlib.import_module(module, __package__)


def known_datasets() -> list:
    """Sorted names of the registered datasets."""
    _import_loaders()
    return sorted(_LOADERS)


def open_dataset(spec: str, *, image_size: Optional[int] = None, cache_dir=None,
                 seed: int = 0, skip_bad: bool = False) -> IQADataset:
    """Open the dataset named by ``spec`` (``"name"`` or ``"name:ROOT"``).

    Unknown names raise ``DatasetError`` listing the known ones.
    """
    if not isinstance(spec, str) or not spec:
        raise DatasetError(f"dataset spec must be 'name' or 'name:ROOT', got {spec!r}")
    name, _, root = spec.partition(":")
    _import_loaders()
    if name not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                         f"{', '.join(sorted(_LOADERS))}")
    return _LOADERS[name](root or None, image_size=image_size, cache_dir=cache_dir,
                          seed=seed, skip_bad=skip_bad)


# Modules whose import registers loaders (relative to freqalign.data). Add new ones here.
LOADER_MODULES = [
    ".embedded",
    ".synthetic_sets",
    ".authentic_sets",
    ".csv_sets",
]
