"""The stem cache: cached stem outputs of every view equal the stem run on the flipped and
rotated images, up to float16 rounding, and a cache file is reused only when it matches."""
import numpy as np
import torch

from freqalign.data.base import TensorIQADataset
from freqalign.method import stem_cache as S
from freqalign.method.efficientnet_lite import EfficientNetLite0Features
from freqalign.train.batches import crop_batch


def _dataset(n=5, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return TensorIQADataset(images, np.linspace(0.1, 0.9, n), np.arange(n), name="tiny")


def test_views_match_crop_batch_augmentations():
    """The 8 views are exactly the flips x rotations ``crop_batch`` draws from."""
    x = torch.arange(2 * 3 * 4 * 4.0).view(2, 3, 4, 4)
    views = S.views_for(True, True)
    assert len(views) == 8 and views[0] == (False, 0) and len(set(views)) == 8
    seen = {tuple(crop_batch(list(x), 4, torch.Generator().manual_seed(s), True, True)[0]
                  .flatten().tolist()) for s in range(200)}
    assert seen == {tuple(S.apply_view(x[0], v).flatten().tolist()) for v in views}
    assert S.views_for(False, False) == [(False, 0)]


def test_cached_features_are_the_stem_of_each_view(tmp_path):
    stem = EfficientNetLite0Features(frozen_blocks=15).stem
    ds = _dataset()
    views = S.views_for(True, False)
    cached = S.cached(stem, ds, views, str(tmp_path), progress=False)
    assert len(cached) == len(ds) and np.array_equal(cached.scores, ds.scores)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    for v, view in enumerate(views):
        exact = stem(S.apply_view(images, view))  # the same batch as the cache's one pass
        got = torch.stack([cached[i][0][v] for i in range(len(ds))])
        # float16 storage: round to nearest, relative error 2^-11 (normal range), 2^-25 absolute
        # below it
        assert torch.all((got - exact).abs() <= exact.abs() * 2.0 ** -11 + 2.0 ** -25)
    # a second call reads the file; another dataset (other scores) gets its own file
    files = list(tmp_path.iterdir())
    again = S.cached(stem, ds, views, str(tmp_path), progress=False)
    assert torch.equal(again.features, cached.features) and list(tmp_path.iterdir()) == files
    other = _dataset(seed=1)
    other.scores = other.scores[::-1].copy()
    S.cached(stem, other, views, str(tmp_path), progress=False)
    assert len(list(tmp_path.iterdir())) == 2


def test_pick_views_draws_every_view_and_first_views_is_identity():
    items = [torch.arange(3.0).view(3, 1, 1, 1) + 10 * i for i in range(4)]
    g = torch.Generator().manual_seed(0)
    drawn = {int(S.pick_views(items, g)[0, 0, 0, 0]) for _ in range(100)}
    assert drawn == {0, 1, 2}
    assert torch.equal(S.first_views(items)[:, 0, 0, 0], torch.tensor([0.0, 10, 20, 30]))
