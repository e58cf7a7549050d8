"""The embedded dataset, its FR label, the dataset base classes, splits and registry."""
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from freqalign.data import (TensorIQADataset, center_crop, load_embedded, open_dataset,
                            split_by_group)
from freqalign.data import embedded
from freqalign.data import fr_score
from freqalign.data.fr_score import ms_ssim_color
from transforms import compose, random_crop, random_hflip

TINY = dict(size=32, n_per_domain=100, progress=False)


@pytest.fixture(scope="module")
def tiny():
    return embedded.generate_embedded(seed=0, **TINY)


def test_photos_are_shipped_with_skimage_and_disjoint_between_domains():
    src = {f for files in embedded.SOURCE_SCENES.values() for f in files}
    tgt = {f for files in embedded.TARGET_SCENES.values() for f in files}
    assert not src & tgt
    for name in src | tgt:
        assert (embedded.skimage_data_dir() / name).is_file(), name


def test_deterministic_for_a_seed(tiny):
    again = embedded.generate_embedded(seed=0, **TINY)
    other = embedded.generate_embedded(seed=1, **TINY)
    for domain in ("source", "target"):
        assert torch.equal(tiny[domain]["images"], again[domain]["images"])
        np.testing.assert_array_equal(tiny[domain]["scores"], again[domain]["scores"])
        assert not torch.equal(tiny[domain]["images"], other[domain]["images"])
        assert not np.array_equal(tiny[domain]["scores"], other[domain]["scores"])


def test_shapes_dtypes_ranges_and_disjoint_groups(tiny):
    src, tgt = tiny["source"], tiny["target"]
    # the source: 100 photo crops and as many dead-leaves charts (v6), each chart its own group
    assert src["images"].shape == (200, 3, 32, 32) and tgt["images"].shape == (100, 3, 32, 32)
    chart = np.asarray(src["chart"])
    assert chart.sum() == 100 and (np.asarray(src["photo"])[chart] == -1).all()
    assert len(set(np.asarray(src["groups"])[chart].tolist())) == 100 // embedded.LEVELS
    src = {k: (np.asarray(v)[~chart] if k in ("groups", "photo") else v) for k, v in src.items()}
    for part in (src, tgt):
        assert part["images"].dtype == torch.uint8
        assert part["scores"].dtype == np.float64
        assert part["scores"].min() >= 0.0 and part["scores"].max() <= 1.0
        assert part["scores"].std() > 0.05  # labels are spread, not constant
    assert not set(src["groups"].tolist()) & set(tgt["groups"].tolist())
    assert not set(src["photo"].tolist()) & set(tgt["photo"].tolist())
    assert len(set(src["photo"].tolist())) == len(embedded.SOURCE_SCENES)
    assert len(set(tgt["photo"].tolist())) == len(embedded.TARGET_SCENES)
    # groups are photo tiles: each group lies in one photo, each photo has several groups
    for part in (src, tgt):
        pairs = set(zip(part["groups"].tolist(), part["photo"].tolist()))
        assert len(pairs) == len(set(part["groups"].tolist())) > len(set(part["photo"].tolist()))
    assert all(1 <= len(s.split("+")) <= 4 for s in tgt["stages"])


def test_tiles_are_disjoint_and_cover_the_photo():
    for h, w in ((512, 512), (191, 384), (300, 451), (872, 1000)):
        mask = np.zeros((h, w), dtype=int)
        tiles = embedded._tiles(h, w)
        for rows, cols in tiles:
            mask[rows, cols] += 1
        assert len(tiles) >= 2 and (mask == 1).all()


def test_source_labels_fall_with_distortion_level(tiny):
    src = tiny["source"]
    level = np.asarray(src["level"])
    means = [src["scores"][level == j].mean() for j in range(embedded.LEVELS)]
    assert all(a > b for a, b in zip(means, means[1:])), means
    # every crop carries one distortion at all five levels: mostly monotonic per crop too
    per_crop = src["scores"].reshape(-1, embedded.LEVELS)
    assert (np.diff(per_crop, axis=1) <= 1e-9).all(axis=1).mean() >= 0.8


def test_load_embedded_caches_and_hits(tmp_path, monkeypatch):
    ds = load_embedded("source", cache_dir=tmp_path, seed=3, **TINY)
    path = embedded.cache_path(tmp_path, seed=3, size=32, n_per_domain=100)
    assert path.is_file() and ds.cache_file == str(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind

    def fail(**kwargs):
        raise AssertionError("cache miss: generated again")

    monkeypatch.setattr(embedded, "generate_embedded", fail)
    target = load_embedded("target", cache_dir=tmp_path, seed=3, **TINY)
    again = load_embedded("source", cache_dir=tmp_path, seed=3, **TINY)
    assert torch.equal(ds.images, again.images)
    assert target.name == "embedded-target" and len(target) == 100
    image, score = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert score.dtype == torch.float32 and score.dim() == 0
    assert "level" in ds.meta and "stages" in target.meta
    with pytest.raises(ValueError, match="domain"):
        load_embedded("middle", cache_dir=tmp_path)


def test_registry_opens_embedded_and_rejects_unknown(tmp_path, monkeypatch):
    tiny = {v: r._replace(n_per_domain=100) for v, r in embedded.RECIPES.items()}
    monkeypatch.setattr(embedded, "RECIPES", tiny)  # tiny defaults for the loader
    ds = open_dataset(f"embedded-target:{tmp_path}", image_size=32, seed=2)
    assert ds.name == "embedded-target" and ds.images.shape == (100, 3, 32, 32)
    v7 = open_dataset(f"embedded-v7-source:{tmp_path}", image_size=32, seed=2)
    assert v7.name == "embedded-v7-source" and v7.images.shape[1:] == (3, 32, 32)
    assert set(v7.meta["kind_names"]) == set(embedded.RECIPES["v7"].source_kinds)
    with pytest.raises(ValueError, match="known datasets: .*embedded-source"):
        open_dataset("no-such-set")


def test_fr_score_matches_skimage_ssim_on_gray_single_scale():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (3, 1, 20, 20)).astype(np.uint8)
    dist = np.clip(ref + rng.normal(0, 25, ref.shape), 0, 255).astype(np.uint8)
    ours = ms_ssim_color(torch.from_numpy(ref).repeat(1, 3, 1, 1),
                         torch.from_numpy(dist).repeat(1, 3, 1, 1))
    for i in range(3):
        sk = structural_similarity(ref[i, 0].astype(float), dist[i, 0].astype(float),
                                   gaussian_weights=True, sigma=1.5, data_range=255,
                                   use_sample_covariance=False, K1=fr_score.K1, K2=fr_score.K2)
        # gray: Cb and Cr are constant 128 in both, so they score 1 with weight 2/8
        assert float(ours[i]) == pytest.approx(0.75 * sk + 0.25, abs=1e-5)


def test_fr_score_identity_and_order():
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.integers(0, 256, (1, 3, 64, 64)).astype(np.uint8))
    assert float(ms_ssim_color(ref, ref)) == pytest.approx(1.0)
    noisy = [torch.from_numpy(np.clip(ref.numpy() + rng.normal(0, s, ref.shape), 0, 255)
                              .astype(np.uint8)) for s in (5, 20, 60)]
    scores = [float(ms_ssim_color(ref, n)) for n in noisy]
    assert scores[0] > scores[1] > scores[2]
    with pytest.raises(ValueError, match="at least 11"):
        ms_ssim_color(ref[..., :8, :8], ref[..., :8, :8])


def _toy(n_groups=10, per_group=(1, 2, 3, 4, 5)):
    counts = [per_group[g % len(per_group)] for g in range(n_groups)]
    groups = np.repeat(np.arange(n_groups) * 7, counts)
    images = torch.zeros(len(groups), 3, 8, 8, dtype=torch.uint8)
    return TensorIQADataset(images, np.linspace(0, 1, len(groups)), groups, "toy")


def test_split_by_group_disjoint_complete_deterministic():
    ds = _toy()
    parts = split_by_group(ds, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    again = split_by_group(ds, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    seen = [set(p.groups.tolist()) for p in parts.values()]
    assert all(seen) and not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sorted(i for p in parts.values() for i in p.indices) == list(range(len(ds)))
    assert all(p.indices == again[k].indices for k, p in parts.items())
    assert len(parts["train"]) > len(parts["val"])
    np.testing.assert_array_equal(parts["val"].scores, ds.scores[parts["val"].indices])
    other = [split_by_group(ds, {"a": 0.5, "b": 0.5}, seed=s)["a"].indices for s in range(5)]
    assert len({tuple(o) for o in other}) > 1
    nested = split_by_group(parts["train"], {"x": 0.5, "y": 0.5}, seed=0)
    assert set(nested["x"].groups.tolist()) <= seen[0]


def test_split_by_group_errors():
    ds = _toy(n_groups=2)
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_group(ds, {"train": 0.6, "val": 0.6}, seed=0)
    with pytest.raises(ValueError, match="only 2 groups"):
        split_by_group(ds, {"a": 0.4, "b": 0.3, "c": 0.3}, seed=0)


def test_crops():
    image = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)  # random_crop and random_hflip draw from the global generator
    out = random_crop(16, hflip=True)(image)
    assert out.shape == (3, 16, 16)
    assert torch.equal(center_crop((10, 20))(image), image[:, 5:15, 5:25])
    with pytest.raises(ValueError, match="larger than the image"):
        center_crop(24)(image)
    flips = {bool(torch.equal(random_hflip()(image), image.flip(-1))) for _ in range(40)}
    assert flips == {True, False}
    ds = _toy()
    ds.transform = compose([random_crop(6), center_crop(4)])
    assert ds[0][0].shape == (3, 4, 4) and ds[0][0].dtype == torch.float32
