"""The embedded dataset: a synthetic-to-authentic shift from scikit-image's own photos.

Built offline from public-domain photos shipped inside the ``skimage/data`` folder
(docs/design.md section 5). Two domains with disjoint photos:

- ``source``: every pristine crop (photo crops, and as many dead-leaves charts: v6) gets one
  synthetic distortion type
  (``degradations.SOURCE_DISTORTIONS``) at all five levels, KADID style;
- ``target``: every pristine crop goes through a random in-camera pipeline of 1-4
  degradations (``degradations.camera_pipeline``).

The photo split is balanced by texture: each domain gets smooth photos (source: moon,
retina, the sky of camera; target: the rocket's sky, chelsea) and textured ones (source:
page, coins, ihc; target: grass, brick, gravel, text). In v3 the smooth photos were all in
the target, whose blurred crops then had high labels but little detail, and a source-trained
model ranked the target backwards (SRCC -0.04; v4: about +0.4, oracle about 0.6).

Crops are square windows of 1x to 3x ``size`` taken at random and resized to ``size`` (box
filter), rejecting near-flat windows, then rotated, mirrored, colour-permuted and given a
random tone curve, so that few photos give varied content. The label of every sample is
the colour MS-SSIM of the stored (uint8) distorted crop against its pristine crop
(``fr_score``), raised to the power
``LABEL_POWER`` = 4 (monotonic, so rank metrics are unchanged; it spreads the labels over
[0, 1] like a MOS scale instead of bunching them near 1), higher = better. The raw MS-SSIM
is kept in ``meta["ms_ssim"]``. Target labels are meant for evaluation only.

``groups`` is a photo *tile*: every photo is cut into 2-4 disjoint regions (``_tiles``) and
each crop lies inside one, so group-disjoint splits never share a pixel. Tiles, not whole
photos, because each domain has only 7-9 photos: with whole-photo groups a target test
split held 2-3 photos whose content the training photos did not cover, and the SRCC of a
model trained on target labels swung from 0.1 to 0.5 with the split seed (measured); with
tiles it is stable (about 0.65). ``meta["photo"]`` holds the photo id for photo-disjoint
splits (assign it to ``groups``). Photo ids differ between the domains, and so do groups.
Everything is drawn from ``numpy`` Generators seeded by ``seed``; both domains are cached
together in one file.
"""
import itertools
import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import storage
from ..errors import MissingFileError
from . import degradations as D
from .base import TensorIQADataset
from .dead_leaves import dead_leaves
from .fr_score import ms_ssim_color
from .registry import register_dataset

CROP_SCALES = (1.0, 1.5, 2.0, 3.0)
GAMMA_RANGE = 0.6  # tone-curve variation of the pristine crops (log2 of the gamma)
MIN_CROP_STD = 0.04  # luminance std (0..1) below which a window counts as flat
TILE_MIN = 128  # a photo side of at least 2 * TILE_MIN is halved into tiles
LEVELS = 5
LABEL_POWER = 4  # score = MS-SSIM ** 4: spreads labels over [0, 1] like a MOS scale


class Recipe(NamedTuple):
    """One version of the embedded dataset: what ``generate_embedded`` makes by default."""
    version: str
    size: int                       # default image side
    n_per_domain: int               # default images per domain (source: photo crops x levels)
    source_kinds: Tuple[str, ...]   # ``degradations.SOURCE_DISTORTIONS`` drawn from, one per crop
    charts: bool                    # dead-leaves charts beside the source photos, as many


# v6: the from-scratch CNN's data (64 x 64, six kinds, charts); v7: the pretrained regime's
# (224 x 224, KADID's kinds that the camera pipeline has counterparts of; benchmarks/results/
# method/benchmark.md says how each choice was made).
RECIPES: Dict[str, Recipe] = {
    "v6": Recipe("v6", 64, 3000, ("gaussian_blur", "white_noise", "jpeg", "contrast",
                                  "pixelation", "quantization"), charts=True),
    "v7": Recipe("v7", 224, 750, ("gaussian_blur", "lens_blur", "motion_blur", "white_noise",
                                  "multiplicative_noise", "jpeg", "jpeg420", "jpeg2000",
                                  "contrast", "brighten", "darken", "pixelation",
                                  "quantization"), charts=True),
}
DEFAULT_RECIPE = "v6"  # the bare names embedded-source/-target: what configs before v7 meant

# scene name -> files in skimage/data. The stereo pair is one scene: one photo id, shared tiles.
SOURCE_SCENES: Dict[str, Tuple[str, ...]] = {
    "astronaut": ("astronaut.png",), "coffee": ("coffee.png",), "ihc": ("ihc.png",),
    "hubble_deep_field": ("hubble_deep_field.jpg",), "camera": ("camera.png",),
    "coins": ("coins.png",), "page": ("page.png",), "moon": ("moon.png",),
    "retina": ("retina.jpg",),
}
TARGET_SCENES: Dict[str, Tuple[str, ...]] = {
    "chelsea": ("chelsea.png",), "motorcycle": ("motorcycle_left.png", "motorcycle_right.png"),
    "rocket": ("rocket.jpg",), "gravel": ("gravel.png",), "text": ("text.png",),
    "grass": ("grass.png",), "brick": ("brick.png",),
}
DOMAINS = ("source", "target")


def skimage_data_dir() -> Path:
    """The ``data`` folder inside the installed scikit-image package."""
    import skimage
    return Path(skimage.__file__).resolve().parent / "data"


def _load_photo(path: Path) -> np.ndarray:
    """A photo as float32 (h, w, 3) in [0, 1]; grayscale is replicated, alpha dropped."""
    if not path.is_file():
        raise MissingFileError(f"embedded dataset photo missing: {path} (is scikit-image "
                                "installed with its data folder?)")
    image = Image.open(path)
    image = image.convert("RGB") if image.mode != "L" else image.convert("L")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


def _random_crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random non-flat window of ``size * scale`` pixels, box-resized to ``size``, then
    varied in appearance (``_vary``)."""
    h, w = photo.shape[:2]
    for _ in range(50):
        side = min(int(round(size * rng.choice(CROP_SCALES))), h, w)
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        window = photo[top:top + side, left:left + side]
        if float((window @ D.LUMA).std()) >= MIN_CROP_STD:
            break
    if side != size:
        window = np.asarray(Image.fromarray(D.to_uint8(window)).resize((size, size), Image.BOX),
                            dtype=np.float32) / 255.0
    return D.to_uint8(_vary(window, rng)).astype(np.float32) / 255.0


def _vary(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """More content from few photos: a random rotation by a multiple of 90 degrees, a mirror,
    a colour-channel permutation and a tone curve (gamma in [2**-GAMMA_RANGE, 2**GAMMA_RANGE]).
    Applied to the pristine crop, so the label stays a pure measure of the distortion; the
    tone curve keeps a model from tying quality to a photo's overall brightness."""
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = crop[..., rng.permutation(3)]
    return np.power(crop, np.float32(2.0 ** rng.uniform(-GAMMA_RANGE, GAMMA_RANGE)))


def _counts(n_total: int, n_parts: int) -> List[int]:
    base, extra = divmod(n_total, n_parts)
    return [base + (i < extra) for i in range(n_parts)]


def _tiles(height: int, width: int) -> List[Tuple[slice, slice]]:
    """Disjoint regions of a photo, one group each: halves along every side of at least
    ``2 * TILE_MIN`` pixels (a 2 x 2 grid for most photos), and at least two halves."""
    rows = 2 if height >= 2 * TILE_MIN else 1
    cols = 2 if width >= 2 * TILE_MIN else 1
    if rows * cols == 1:
        rows, cols = (2, 1) if height > width else (1, 2)
    hs = np.linspace(0, height, rows + 1).astype(int)
    ws = np.linspace(0, width, cols + 1).astype(int)
    return [(slice(hs[i], hs[i + 1]), slice(ws[j], ws[j + 1]))
            for i in range(rows) for j in range(cols)]


def _pristine_crops(scenes: Dict[str, Tuple[str, ...]], n_crops: int, size: int, rng,
                    first_group: int):
    """Yield ``(pristine, group, scene_index)`` for ``n_crops`` crops spread evenly
    over the scenes, and within a scene round-robin over its tiles (and its files)."""
    group = first_group
    for s, crops in enumerate(_counts(n_crops, len(scenes))):
        photos = [_load_photo(skimage_data_dir() / f) for f in scenes[list(scenes)[s]]]
        tiles = _tiles(*photos[0].shape[:2])  # a stereo pair shares its tiles
        for c in range(crops):
            t, f = c % len(tiles), (c // len(tiles)) % len(photos)
            yield _random_crop(photos[f][tiles[t]], size, rng), group + t, s
        group += len(tiles)


def _chart_crops(n_crops: int, size: int, rng, first_group: int):
    """Yield ``(pristine, group, scene_index -1)`` for ``n_crops`` dead-leaves charts, rendered
    at one of ``CROP_SCALES`` times ``size`` and box-resized like the photo crops (which
    anti-aliases the leaf edges); every chart is a group of its own."""
    for c in range(n_crops):
        side = int(round(size * rng.choice(CROP_SCALES)))
        chart = dead_leaves(side, rng)
        if side != size:
            chart = np.asarray(Image.fromarray(D.to_uint8(chart)).resize((size, size), Image.BOX),
                               dtype=np.float32) / 255.0
        yield D.to_uint8(_vary(chart, rng)).astype(np.float32) / 255.0, first_group + c, -1


def _generate_source(rng, size, n, bar, recipe: Recipe) -> dict:
    kinds = list(recipe.source_kinds)
    ref, dist, groups, photo, kind_ids, levels = [], [], [], [], [], []
    photos = list(_pristine_crops(SOURCE_SCENES, n // LEVELS, size, rng, first_group=0))
    charts = _chart_crops(n // LEVELS, size, rng, first_group=photos[-1][1] + 1) \
        if recipe.charts else ()
    for pristine, group, scene in itertools.chain(photos, charts):
        kind = kinds[int(rng.integers(len(kinds)))]
        for level in range(LEVELS):
            dist.append(D.to_uint8(D.apply_source(pristine, kind, level, rng)))
            ref.append(D.to_uint8(pristine))
            groups.append(group)
            photo.append(scene)
            kind_ids.append(kinds.index(kind))
            levels.append(level)
        bar.update(LEVELS)
    photo = np.asarray(photo)
    return dict(ref=ref, dist=dist, groups=groups, photo=photo, chart=photo < 0,
                kind=np.asarray(kind_ids), level=np.asarray(levels), kind_names=kinds,
                scene_names=list(SOURCE_SCENES))


def _generate_target(rng, size, n, bar, first_group: int) -> dict:
    ref, dist, groups, photo, stages, params = [], [], [], [], [], []
    for pristine, group, scene in _pristine_crops(TARGET_SCENES, n, size, rng,
                                                     first_group=first_group):
        p = D.sample_camera_params(rng)
        dist.append(D.to_uint8(D.camera_pipeline(pristine, p, rng)))
        ref.append(D.to_uint8(pristine))
        groups.append(group)
        photo.append(len(SOURCE_SCENES) + scene)  # photo ids stay unique across domains
        stages.append("+".join(p["stages"]))
        params.append(p)
        bar.update(1)
    return dict(ref=ref, dist=dist, groups=groups, photo=np.asarray(photo), stages=stages,
                params=params, scene_names=list(TARGET_SCENES))


def _finish(raw: dict, bar, batch: int = 32) -> dict:
    """Stack to (N, 3, h, w) uint8 tensors and compute the labels (small batches stay in
    cache, which is what makes the FR score fast on CPU)."""
    ref = torch.from_numpy(np.stack(raw.pop("ref"))).permute(0, 3, 1, 2).contiguous()
    dist = torch.from_numpy(np.stack(raw.pop("dist"))).permute(0, 3, 1, 2).contiguous()
    fr = []
    for i in range(0, len(ref), batch):
        fr.append(ms_ssim_color(ref[i:i + batch], dist[i:i + batch]))
        bar.update(len(fr[-1]))
    fr = torch.cat(fr).numpy()
    raw.update(images=dist, scores=fr ** LABEL_POWER, ms_ssim=fr,
               groups=np.asarray(raw["groups"]))
    return raw


def recipe_of(version: str = DEFAULT_RECIPE) -> Recipe:
    """The ``Recipe`` named ``version`` (``v6``, ``v7``); a ValueError names the known ones."""
    if version not in RECIPES:
        raise ValueError(f"unknown embedded dataset version {version!r}; known: {sorted(RECIPES)}")
    return RECIPES[version]


def generate_embedded(*, seed: int = 0, size: int = 0, n_per_domain: int = 0,
                      version: str = DEFAULT_RECIPE, progress: bool = True) -> dict:
    """Generate both domains of recipe ``version``: ``{"source": {...}, "target": {...},
    "meta": {...}}``; ``size`` and ``n_per_domain`` 0 take the recipe's.

    Each domain holds ``images`` (N, 3, size, size) uint8, ``scores`` float64 in [0, 1],
    ``groups`` (photo ids) and per-sample metadata (source: ``kind``, ``level``; target:
    ``stages``, ``params``). ``n_per_domain`` is approximate for the source (a multiple of
    the five levels; twice that with the recipe's charts).
    """
    recipe = recipe_of(version)
    size, n_per_domain = int(size or recipe.size), int(n_per_domain or recipe.n_per_domain)
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    if n_per_domain < LEVELS * len(SOURCE_SCENES):
        raise ValueError(f"n_per_domain must be at least {LEVELS * len(SOURCE_SCENES)} (one "
                         f"crop per source photo at {LEVELS} levels), got {n_per_domain}")
    src_n = (1 + recipe.charts) * (n_per_domain // LEVELS) * LEVELS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-crop work: extra threads only contend on a busy CPU
    try:
        total = src_n + n_per_domain
        with tqdm(total=total, desc="embedded: crops", disable=not progress,
                  unit="img") as bar:
            source = _generate_source(np.random.default_rng([seed, 0]), size, n_per_domain,
                                      bar, recipe)
            target = _generate_target(np.random.default_rng([seed, 1]), size, n_per_domain,
                                      bar, first_group=max(source["groups"]) + 1)
        with tqdm(total=total, desc="embedded: MS-SSIM labels", disable=not progress,
                  unit="img") as bar:
            out = {"source": _finish(source, bar), "target": _finish(target, bar)}
    finally:
        torch.set_num_threads(threads)
    out["meta"] = {"version": recipe.version, "seed": seed, "size": size,
                   "n_per_domain": n_per_domain}
    return out


def cache_path(cache_dir=None, *, seed: int = 0, size: int = 0, n_per_domain: int = 0,
               version: str = DEFAULT_RECIPE) -> Path:
    """``<cache_dir>/embedded-<version>-<seed>-<size>[-n<N>].pt`` (size and N 0: the recipe's);
    default dir ``$FREQALIGN_CACHE`` or ``~/.cache/freqalign``."""
    recipe = recipe_of(version)
    root = Path(cache_dir or os.environ.get("FREQALIGN_CACHE")
                or Path.home() / ".cache" / "freqalign").expanduser()
    n = n_per_domain or recipe.n_per_domain
    suffix = "" if n == recipe.n_per_domain else f"-n{n}"
    return root / f"embedded-{version}-{seed}-{size or recipe.size}{suffix}.pt"


def _to_storable(data: dict) -> dict:
    """The cache dict with every numpy array as a tensor: only types that
    ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, lists, tuples, dicts)."""
    return {name: {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in part.items()}
            for name, part in data.items()}


def _from_storable(data: dict) -> dict:
    """Inverse of ``_to_storable``: every tensor but ``images`` back to a numpy array."""
    return {name: {k: v.numpy() if isinstance(v, torch.Tensor) and k != "images" else v
                   for k, v in part.items()}
            for name, part in data.items()}


def _atomic_save(data: dict, path: Path) -> None:
    storage.save(_to_storable(data), path)


def load_embedded(domain: str, *, cache_dir=None, seed: int = 0, size: int = 0,
                  n_per_domain: int = 0, version: str = DEFAULT_RECIPE, progress: bool = True,
                  transform=None) -> TensorIQADataset:
    """The ``domain`` ("source" or "target") of the embedded dataset of recipe ``version``,
    generated on first use and cached (see ``cache_path``). Metadata is on ``dataset.meta``."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    path = cache_path(cache_dir, seed=seed, size=size, n_per_domain=n_per_domain,
                      version=version)
    data = None
    if path.is_file():
        data = _from_storable(storage.load(path))
        if data.get("meta", {}).get("version") != version:
            data = None
    if data is None:
        data = generate_embedded(seed=seed, size=size, n_per_domain=n_per_domain,
                                 version=version, progress=progress)
        _atomic_save(data, path)
    part = data[domain]
    prefix = "embedded" if version == DEFAULT_RECIPE else f"embedded-{version}"
    ds = TensorIQADataset(part["images"], part["scores"], part["groups"],
                          name=f"{prefix}-{domain}", transform=transform)
    ds.meta = {k: v for k, v in part.items() if k not in ("images", "scores", "groups")}
    ds.cache_file = str(path)
    return ds


def _loader(domain: str, version: str):
    """Registry loader: ``embedded[-<version>]-<domain>[:CACHE_DIR]``; ``image_size`` is the
    generated side (None: the recipe's)."""
    def load(root: Optional[str], *, image_size=None, cache_dir=None, seed=0, skip_bad=False):
        return load_embedded(domain, cache_dir=root or cache_dir, seed=seed,
                             size=image_size or 0, version=version)
    return load


for _domain in DOMAINS:
    register_dataset(f"embedded-{_domain}")(_loader(_domain, DEFAULT_RECIPE))
    for _version in RECIPES:
        register_dataset(f"embedded-{_version}-{_domain}")(_loader(_domain, _version))
