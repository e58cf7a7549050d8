"""IQA datasets: the base classes, content-disjoint splits, the registry and the embedded
synthetic-to-authentic dataset (docs/design.md section 5).

>>> from freqalign.data import open_dataset, split_by_group
>>> source = open_dataset("embedded-source")            # doctest: +SKIP
>>> parts = split_by_group(source, {"train": 0.8, "val": 0.2}, seed=0)  # doctest: +SKIP
"""
from .base import IQADataset, TensorIQADataset, center_crop
from .embedded import generate_embedded, load_embedded
from .registry import known_datasets, open_dataset, register_dataset
from .splits import IQASubset, split_by_group

__all__ = ["IQADataset", "TensorIQADataset", "IQASubset", "center_crop", "split_by_group",
           "open_dataset", "register_dataset", "known_datasets", "load_embedded", "generate_embedded"]
