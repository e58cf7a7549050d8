"""A run killed in any stage and restarted with ``--resume`` reaches the same results as an
uninterrupted run (bit-exact on CPU with deterministic settings)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from freqalign.run.config import make_config, parse_overrides
from freqalign.train.loop import train

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXACT = ("method", "selected_window", "search", "steps")  # bit-exact: the run itself
METRICS = ("target", "source_val")  # from bit-exact predictions; plcc_logistic's iterative
# 4-parameter fit varies in its last digits with BLAS threading, so these agree to 1e-9


def assert_same_run(results, reference, run, reference_run):
    for key in EXACT:
        assert results[key] == reference[key], key
    for key in METRICS:
        assert results[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-12), key
    same = [np.load(os.path.join(r, "target_predictions.npz"))["pred"] for r in (run, reference_run)]
    np.testing.assert_array_equal(*same)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tiny = tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))
    reference_run = str(tmp_path_factory.mktemp("reference"))
    reference = train(make_config("smoke", overrides=parse_overrides(tiny)), reference_run)
    return tiny, reference, reference_run


def cli(*args, kill_after=0):
    """The CLI in a subprocess; with ``kill_after`` hard-killed after that optimizer step."""
    command = ([os.path.join(ROOT, "tests", "killed_run.py"), str(kill_after)] if kill_after
               else ["-m", "freqalign"])
    return subprocess.run([sys.executable, *command, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


# tiny plan: warmup 0-3, dann-warmup 4-5, search 6-11 (positions 0, 20, 40, each branching from
# the state at step 6), finetune 12-14; checkpoints every 2 steps, and the kill comes before
# the killed step's checkpoint, so each kill loses steps that the resumed run must replay.
@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [3, 9, 13], ids=["warmup", "search", "finetune"])
def test_killed_run_resumes_to_identical_results(setup, tmp_path, kill_at):
    tiny, reference, reference_run = setup
    run = tmp_path / "run"
    killed = cli("train", "--preset", "smoke", "--out", str(run), *tiny, kill_after=kill_at)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert not (run / "results.json").exists()
    resumed = cli("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert_same_run(results, reference, str(run), reference_run)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # records after the checkpoint were dropped, not duplicated


def test_fork_from_shared_warmup_equals_a_fresh_run(setup, tmp_path):
    """compare's shortcut: dann forked after freqalign's DANN warm-up == dann from scratch."""
    tiny, _, _ = setup
    cfg = make_config("smoke", overrides=parse_overrides(tiny))
    train(cfg, str(tmp_path / "fa"), keep_stage_checkpoints=True)
    dann = make_config("smoke", overrides={**parse_overrides(tiny), "method": "dann"})
    fresh = train(dann, str(tmp_path / "fresh"))
    forked = train(dann, str(tmp_path / "forked"),
                   fork_from=str(tmp_path / "fa" / "checkpoints" / "after-dann-warmup.pt"))
    assert_same_run(forked, fresh, str(tmp_path / "forked"), str(tmp_path / "fresh"))
