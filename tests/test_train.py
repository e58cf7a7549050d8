"""Config handling, schedules, and a tiny end-to-end run with every output file."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
import yaml

from freqalign.run.config import (METHODS, PRESETS, RENAMED, ConfigError, make_config,
                                    parse_overrides)
from freqalign.run.files import stage_checkpoint
from freqalign.train.loop import train
from freqalign.train.plan import Plan

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
    assert cfg.preset == preset and Plan(cfg).total > 0


@pytest.mark.parametrize("preset", ["smoke", "demo", "scratch"])
def test_config_files_match_presets(preset):
    with open(os.path.join(ROOT, "configs", f"{preset}.yaml")) as fh:
        assert make_config(preset).to_dict() == yaml.safe_load(fh)


@pytest.mark.parametrize("mode", ["branch", "move", "probe"])
def test_every_method_gets_the_same_budget(mode):
    """The final model of every method has the same number of steps in its history: the
    baselines' whole run; freqalign's warm-ups, one position's budget (branch) or the whole walk
    (move), and fine-tuning."""
    plans = {m: Plan(make_config("demo", method=m, search_mode=mode)) for m in METHODS}
    for m in ("dann", "source-only", "target-oracle"):
        assert plans[m].total == plans[m].budget
    assert len({p.budget for p in plans.values()}) == 1
    fa = plans["freqalign"]
    c = fa.cfg
    walk = len(fa.positions) * c.steps_per_position if mode != "probe" else 0
    assert fa.total == c.warmup_steps + c.dann_warmup_steps + walk + c.finetune_steps
    assert fa.stages[:2] == plans["dann"].stages[:2]  # shared warm-ups: what compare forks from


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


def test_renamed_keys_still_load_with_a_one_line_deprecation_warning(tmp_path):
    """A config of before the renames (file, override or saved in a run) loads as the new keys
    would, warning once per old key."""
    old = tmp_path / "old.yaml"
    old.write_text("preset: demo\nsearch_step: 3\nsearch_steps: 7\n")
    with pytest.warns(FutureWarning) as caught:
        cfg = make_config(None, str(old))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("\n" not in m and "deprecated" in m for m in messages)
    assert "'search_step'" in messages[0] and "'search_stride'" in messages[0]
    assert (cfg.search_stride, cfg.steps_per_position) == (3, 7)
    with pytest.warns(FutureWarning, match="'search_steps' is deprecated, use 'steps_per_position'"):
        assert make_config("demo", overrides={"search_steps": 7}) == \
            make_config("demo", overrides={"steps_per_position": 7})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names load silently
        make_config("demo", overrides={new: 3 for new in RENAMED.values()})


def test_finished_runs_of_before_the_renames_are_reused(tmp_path):
    """compare and study reuse a finished run whose results.json holds the old config keys."""
    from freqalign.train.evaluate import finished

    cfg = make_config("smoke")
    saved = {next((old for old, new in RENAMED.items() if new == k), k): v
             for k, v in cfg.to_dict().items()}
    assert set(RENAMED) <= set(saved)
    results = {"config": saved, "stages": Plan(cfg).as_list(), "target": {"srcc": 0.5}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    other = make_config("smoke", overrides={"steps_per_position": 5})
    with pytest.warns(FutureWarning):
        assert finished(cfg, str(tmp_path)) == results
        assert finished(other, str(tmp_path)) is None


def test_plan_names_the_checkpoints_forks_start_from(tmp_path):
    """Each baseline forks from freqalign's checkpoint at the end of the last stage their plans
    share; none when they share none."""
    def fork(method, **extra):
        fa = Plan(make_config("demo", overrides=extra))
        return Plan(make_config("demo", method=method, overrides=extra)).fork_from(fa, "fa")

    assert fork("source-only") == stage_checkpoint("fa", "warmup") == \
        os.path.join("fa", "checkpoints", "after-warmup.pt")
    assert fork("dann") == os.path.join("fa", "checkpoints", "after-dann-warmup.pt")
    assert fork("target-oracle") == ""
    assert fork("dann", dann_warmup_steps=0) == os.path.join("fa", "checkpoints", "after-warmup.pt")
    assert fork("source-only", warmup_steps=0) == ""


def test_import_freqalign_does_not_import_the_trainer():
    """``import freqalign`` (a fresh interpreter) loads no module of ``freqalign.train``;
    ``freqalign.load_scorer`` is ``freqalign.scoring``'s."""
    code = ("import sys, freqalign\n"
            "print(sorted(m for m in sys.modules if m.startswith('freqalign.train')))\n"
            "print(freqalign.load_scorer.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "freqalign.scoring"]


def test_lr_schedule_and_stage_lookup():
    cfg = make_config("demo", overrides={"warmup_steps": 1000, "lr_warmup": 0.1})
    plan, w, low = Plan(cfg), cfg.warmup_steps, cfg.adapt_lr_scale
    ramp = int(cfg.lr_warmup * w)
    assert plan.lr_factor(0) == pytest.approx(1 / ramp)  # linear ramp ...
    assert plan.lr_factor(ramp - 1) == pytest.approx(1.0)  # ... to the peak
    mid = ramp + (w - ramp) // 2
    assert plan.lr_factor(mid) == pytest.approx(low + (1 - low) / 2, rel=1e-2)  # cosine half-way
    start = w + plan.adapt_steps - cfg.finetune_steps
    assert plan.lr_factor(w) == plan.lr_factor(start - 1) == low  # constant while adapting
    assert plan.lr_factor(start) == pytest.approx(low)
    assert plan.lr_factor(w + plan.adapt_steps - 1) < 1e-3 * low  # cosine to 0 in fine-tuning
    stages = plan.stages
    assert plan.stage_at(0) == (stages[0], 0) and stages[0].name == "warmup"
    assert plan.stage_at(w)[0].name == "dann-warmup"
    assert plan.stages_done(w) == [("warmup", w)]
    assert plan.stage_ending_at(w) == "warmup" and plan.stage_ending_at(w + 1) is None
    assert plan.stage_at(plan.total - cfg.finetune_steps)[0].name == "finetune"


def test_branch_positions_share_the_lineage_schedule():
    """In branch mode each position's k-th step sees the lr and lambda of the origin + k."""
    cfg = make_config("smoke")
    plan = Plan(cfg)
    search = [s for s in plan.stages if s.name == "search"][0]
    origin, per = cfg.warmup_steps + cfg.dann_warmup_steps, cfg.steps_per_position
    for t_in in range(search.steps):
        assert plan.lineage_step(origin + t_in) == origin + t_in % per
    assert plan.lineage_step(plan.total - cfg.finetune_steps) == origin + per


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
    positions = Plan(cfg).positions
    assert sel["position"] in positions and sel["size"] == 4 and len(sel["freqs"]) == 4
    for split in ("target", "source_val"):
        assert set(saved[split]) >= {"srcc", "plcc", "krcc", "rmse"}
    assert [e["position"] for e in saved["search"]] == positions
    assert all({"score", "target_test_srcc", "criterion"} <= set(e) for e in saved["search"])
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg.to_dict()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {"train", "eval"}
    best = torch.load(tmp_path / "checkpoints/best.pt", weights_only=True)
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
    cfg = tiny_config(tiny, search_mode="probe", search_stride=5)
    plan = Plan(cfg)
    results = train(cfg, str(tmp_path))
    assert [e["position"] for e in results["search"]] == plan.positions
    assert results["criterion"] == "probe" and results["steps"] == plan.total
    assert "search" not in [s.name for s in plan.stages]


def test_compare_writes_tables_and_reuses_finished_runs(tiny, tmp_path):
    from freqalign.train.compare import ORDER, compare

    cfg = tiny_config(tiny)
    table = compare(cfg, str(tmp_path), seeds=1)
    for m in ORDER:
        assert m in table
    data = json.loads((tmp_path / "compare.json").read_text())
    assert set(ORDER) <= set(data["summary"]) and set(data["gap_closed"]) == {"freqalign", "dann"}
    assert data["runs"]["dann"][0]["forked_from"].endswith("after-dann-warmup.pt")
    stamp = (tmp_path / "seed0" / "dann" / "results.json").stat().st_mtime
    assert compare(cfg, str(tmp_path), seeds=1) == table
    assert (tmp_path / "seed0" / "dann" / "results.json").stat().st_mtime == stamp


# -- paired comparisons and the transferability study ---------------------------------------
def test_paired_interval_matches_scipy_ttest():
    """The interval of the mean paired difference is scipy's one-sample t interval (the oracle);
    both are a few float64 operations on five values, so 1e-12 is far above their rounding."""
    from scipy import stats

    from freqalign.train.paired import gap_closed, paired_difference

    a, b = [0.61, 0.58, 0.66, 0.60, 0.63], [0.55, 0.57, 0.60, 0.52, 0.61]
    d = paired_difference(a, b)
    ci = stats.ttest_1samp([x - y for x, y in zip(a, b)], 0.0).confidence_interval(0.95)
    assert (d["low"], d["high"]) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
    assert d["excludes_zero"] and d["n"] == 5
    assert not paired_difference([0.5, 0.6], [0.6, 0.5])["excludes_zero"]
    g = gap_closed([0.6, 0.7], [0.5, 0.5], [0.7, 0.9])  # gains 0.1, 0.2 of gaps 0.2, 0.4
    assert g["share"] == pytest.approx(0.5) and g["per_seed"] == pytest.approx([0.5, 0.5])


@pytest.mark.slow
def test_compare_reports_paired_intervals_and_rejects_results_of_another_config(tiny, tmp_path):
    from freqalign.train.compare import compare
    from freqalign.train.evaluate import finished

    cfg = tiny_config(tiny, progress=False)
    compare(cfg, str(tmp_path), seeds=2)
    data = json.loads((tmp_path / "compare.json").read_text())
    fa, dann = (data["summary"][m]["target_all_srcc"] for m in ("freqalign", "dann"))
    pair = data["paired"]["freqalign - dann"]
    assert pair["per_seed"] == pytest.approx([x - y for x, y in zip(fa, dann)])
    assert pair["low"] <= pair["mean"] <= pair["high"]
    boot = data["bootstrap"]["freqalign - dann"]
    assert boot["low"] <= boot["high"] and boot["groups"] == 8  # the tiny target's 8 groups
    assert set(data["features"]) == {"target", "source_val", "target_oracle"}
    # a crashed rerun with another config rewrites config.yaml but not results.json: not reused
    run = tmp_path / "seed0" / "dann"
    other = tiny_config(tiny, progress=False, lr=0.5)
    (run / "config.yaml").write_text(yaml.safe_dump(other.to_dict()))
    assert finished(other, str(run)) is None


@pytest.mark.slow
def test_study_branches_every_window_from_one_warmup(tiny, tmp_path):
    from freqalign.train.study import study

    cfg = tiny_config(tiny, progress=False)
    text = study(cfg, str(tmp_path), seeds=2, stride=20)
    report = json.loads((tmp_path / "study.json").read_text())
    assert report["positions"] == [0, 20, 40] and (tmp_path / "study.png").is_file()
    assert set(report["criteria"]) == {"dev", "source", "confusion"} and "dev" in text
    for row in report["rows"]:
        assert {"dann", "source-only"} <= set(row) and len(row["windows"]) == 3
    # every window's run started from the same state: its search entries were recorded after
    # the same number of lineage steps, so the window runs differ only by their window
    run = json.loads((tmp_path / "seed0" / "windows" / "results.json").read_text())
    assert run["search_mode"] == "branch" and run["budget"] == \
        cfg.warmup_steps + cfg.dann_warmup_steps + cfg.steps_per_position


def test_branch_position_equals_a_run_of_that_position_alone(tiny, tmp_path):
    """Branch mode restarts each position from the search origin (weights, optimiser moments,
    batches, RNGs): position 20 of a full search scores exactly as a search of position 20 only."""
    full = train(tiny_config(tiny, finetune_steps=0), str(tmp_path / "full"))
    alone = train(tiny_config(tiny, finetune_steps=0, search_start=20, search_end=20),
                  str(tmp_path / "alone"))
    assert [e["position"] for e in full["search"]] == [0, 20, 40]
    assert alone["search"][0]["scores"] == full["search"][1]["scores"]
    assert alone["search"][0]["target_test_srcc"] == full["search"][1]["target_test_srcc"]


@pytest.mark.slow
def test_study_from_compare_warmups_equals_a_study_from_scratch(tiny, tmp_path):
    """``--warmups``: starting each seed from a compare run's source warm-up gives the same
    study (training is deterministic), and a warm-up of another config is refused."""
    from freqalign.train.compare import compare
    from freqalign.train.study import study

    cfg = tiny_config(tiny, progress=False)
    compare(cfg, str(tmp_path / "compare"), seeds=2)
    study(cfg, str(tmp_path / "scratch"), seeds=2, stride=20)
    study(cfg, str(tmp_path / "shared"), seeds=2, stride=20, warmups=str(tmp_path / "compare"))
    rows = [json.loads((tmp_path / d / "study.json").read_text())["rows"] for d in ("scratch", "shared")]
    assert rows[0] == rows[1]
    with pytest.raises(ConfigError, match="other values of lr"):
        study(tiny_config(tiny, progress=False, lr=0.01), str(tmp_path / "other"), seeds=1,
              stride=20, warmups=str(tmp_path / "compare"))
