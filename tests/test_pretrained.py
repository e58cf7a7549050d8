"""The pretrained regime end to end at a tiny size: EfficientNet-Lite0 with a frozen, cached
stem trains through all three stages, and its checkpoint scores raw images as training's own
evaluation did (up to the stem cache's float16 rounding)."""
import numpy as np
import pytest

from freqalign.data import embedded
from freqalign.data.domains import load_data
from freqalign.scoring import load_model
from freqalign.run.config import make_config, parse_overrides
from freqalign.train.evaluate import predict
from freqalign.train.loop import train

TINY = ["image_size=64", "grid=2", "window_size=1", "batch_size=8", "eval_batch_size=32",
        "disc_hidden=16", "regressor_hidden=8", "warmup_steps=4", "dann_warmup_steps=2",
        "search_stride=1", "steps_per_position=2", "finetune_steps=2", "eval_every=4",
        "checkpoint_every=4", "log_every=4", "criterion_max_samples=32", "domain_fit_steps=5",
        "progress=false", "threads=1", "data_size=64"]


@pytest.mark.slow
def test_pretrained_regime_trains_and_its_checkpoint_scores_raw_images(tmp_path, monkeypatch):
    tiny = {v: r._replace(n_per_domain=50) for v, r in embedded.RECIPES.items()}
    monkeypatch.setattr(embedded, "RECIPES", tiny)
    cfg = make_config("demo", overrides=parse_overrides(TINY + [f"cache_dir={tmp_path}"]))
    assert cfg.backbone == "efficientnet-lite0" and cfg.feature_cache
    results = train(cfg, str(tmp_path / "run"))
    assert results["feature_map"] == [2, 2]
    assert len(results["search"]) == 4  # every position of the 2x2 grid, window size 1
    stem_files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stem-"))
    assert len(stem_files) == 2  # one stem cache per domain, 2 views each (hflip)
    # the final checkpoint on raw images (its whole backbone, no cache) predicts what the run
    # reported from the cache: the only difference is the cached stem's float16 rounding
    # (relative 2^-11), which moves a score in [0, 1] by far less than 1e-2 (measured: ~1e-4)
    model, saved_cfg, _, device = load_model(str(tmp_path / "run" / "checkpoints" / "last.pt"),
                                             "cpu")
    assert not model.from_stem
    data, _ = load_data(saved_cfg)
    raw = predict(model, data["tgt_test"], list(range(len(data["tgt_test"]))), saved_cfg, device)
    cached = np.load(tmp_path / "run" / "target_predictions.npz")
    assert np.array_equal(raw["true"], cached["true"])
    assert np.abs(raw["pred"] - cached["pred"]).max() < 1e-2
