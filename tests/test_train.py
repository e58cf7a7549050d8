"""Config handling, schedules, and a tiny end-to-end run with every output file."""
import json
import os

import pytest
import torch
import yaml

from freqalign.train.config import (METHODS, PRESETS, ConfigError, make_config,
                                    parse_overrides)
from freqalign.train.loop import lr_factor, stage_at, stages_done, train

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))


def tiny_config(tiny, **extra):
    return make_config("smoke", overrides={**parse_overrides(tiny), **extra})


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_validate(preset):
    cfg = make_config(preset)
    assert cfg.preset == preset and cfg.total_steps() > 0


@pytest.mark.parametrize("preset", ["smoke", "demo"])
def test_config_files_match_presets(preset):
    with open(os.path.join(ROOT, "configs", f"{preset}.yaml")) as fh:
        assert make_config(preset).to_dict() == yaml.safe_load(fh)


def test_every_method_gets_the_same_budget():
    totals = {m: make_config("demo", method=m).total_steps() for m in METHODS}
    assert len(set(totals.values())) == 1
    fa, dann = make_config("demo").stages(), make_config("demo", method="dann").stages()
    assert fa[:2] == dann[:2]  # shared warm-ups: what compare forks from


def test_unknown_and_badly_typed_keys_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'lrr'"):
        make_config("demo", overrides={"lrr": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        make_config("demo", overrides={"warmup_steps": "many"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: dann\nwindow_sise: 3\n")
    with pytest.raises(ConfigError, match="window_sise"):
        make_config(None, str(bad))
    with pytest.raises(ConfigError, match="method"):
        make_config("demo", overrides={"method": "magic"})
    with pytest.raises(ConfigError, match="best_criterion"):
        make_config("demo", overrides={"best_criterion": "oracle"})


def test_precedence_preset_file_override_flag(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: smoke\nlr: 0.5\nseed: 3\n")
    cfg = make_config(None, str(f), {"seed": 4}, method="dann")
    assert (cfg.preset, cfg.lr, cfg.seed, cfg.method) == ("smoke", 0.5, 4, "dann")
    assert cfg.warmup_steps == PRESETS["smoke"]["warmup_steps"]
    assert parse_overrides(["a=1", "b=false", "c=x=y"]) == {"a": 1, "b": False, "c": "x=y"}


def test_lr_schedule_and_stage_lookup():
    cfg = make_config("smoke")
    start = cfg.total_steps() - cfg.finetune_steps
    assert lr_factor(cfg, 0) == 1.0 and lr_factor(cfg, start - 1) == 1.0
    assert lr_factor(cfg, start) == pytest.approx(cfg.finetune_lr_scale)
    assert lr_factor(cfg, cfg.total_steps() - 1) < 0.05 * cfg.finetune_lr_scale
    stages = cfg.stages()
    assert stage_at(stages, 0) == ("warmup", 0, cfg.warmup_steps)
    assert stage_at(stages, cfg.warmup_steps)[0] == "dann-warmup"
    assert stages_done(stages, cfg.warmup_steps) == [("warmup", cfg.warmup_steps)]
    assert stage_at(stages, start)[:2] == ("finetune", 0)


# -- end to end ---------------------------------------------------------------------------
def test_tiny_freqalign_run_writes_every_output(tiny, tmp_path):
    cfg = tiny_config(tiny)
    results = train(cfg, str(tmp_path))
    for name in ("config.yaml", "metrics.jsonl", "results.json", "report.md", "search.png",
                 "training.png", "target_scatter.png", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tmp_path / name).is_file(), name
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "tb"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["method"] == "freqalign"
    sel = saved["selected_window"]
    assert sel["position"] in cfg.positions() and sel["size"] == 4 and len(sel["freqs"]) == 4
    for split in ("target", "source_val"):
        assert set(saved[split]) >= {"srcc", "plcc", "krcc", "rmse"}
    assert [e["position"] for e in saved["search"]] == cfg.positions()
    assert all({"score", "oracle_target_srcc", "criterion"} <= set(e) for e in saved["search"])
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg.to_dict()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train", "eval"}
    best = torch.load(tmp_path / "checkpoints/best.pt", weights_only=False)
    assert best["criterion"] == cfg.best_criterion
    assert results["target"] == saved["target"]


@pytest.mark.parametrize("method", ["source-only", "dann", "target-oracle"])
def test_baselines_run(tiny, tmp_path, method):
    results = train(tiny_config(tiny, method=method), str(tmp_path))
    assert results["method"] == method and results["search"] == []
    assert (results["selected_window"] is None) == (method != "dann")


def test_probe_mode_compare_forks_dann_after_the_shared_warmup(tiny, tmp_path):
    from freqalign.train.compare import compare

    compare(tiny_config(tiny, search_mode="probe"), str(tmp_path), seeds=1)
    assert (tmp_path / "seed0" / "freqalign" / "checkpoints" / "after-dann-warmup.pt").is_file()


def test_probe_mode_scores_every_position_without_moving(tiny, tmp_path):
    cfg = tiny_config(tiny, search_mode="probe", search_step=5)
    results = train(cfg, str(tmp_path))
    assert [e["position"] for e in results["search"]] == cfg.positions()
    assert results["criterion"] == "probe" and results["steps"] == cfg.total_steps()
    assert "search" not in [s for s, _ in cfg.stages()]


def test_compare_writes_tables_and_reuses_finished_runs(tiny, tmp_path):
    from freqalign.train.compare import ORDER, compare

    cfg = tiny_config(tiny)
    table = compare(cfg, str(tmp_path), seeds=1)
    for m in ORDER:
        assert m in table
    data = json.loads((tmp_path / "compare.json").read_text())
    assert set(ORDER) <= set(data["summary"]) and "gap_closed_by_freqalign" in data["summary"]
    assert data["runs"]["dann"][0]["forked_from"].endswith("after-dann-warmup.pt")
    stamp = (tmp_path / "seed0" / "dann" / "results.json").stat().st_mtime
    assert compare(cfg, str(tmp_path), seeds=1) == table
    assert (tmp_path / "seed0" / "dann" / "results.json").stat().st_mtime == stamp
