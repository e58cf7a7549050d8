"""A non-finite loss or gradient norm: the run stops with one line naming the step, the stage
and the value, keeping its last good checkpoint (``on_nonfinite=stop``), or drops the step and
counts it (``skip``), stopping after ``max_nonfinite`` in a row. The fault is a real NaN batch
fed to the real trainer."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from freqalign import cli
from freqalign.run import checkpoint
from freqalign.train import loop

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))


def nan_batches(monkeypatch, *steps):
    """The trainer's batches of optimizer steps ``steps`` (1-based) are all NaN."""
    real, calls = loop.next_batch, [0]

    def poisoned(*args, **kwargs):
        x, y, n_labelled = real(*args, **kwargs)
        calls[0] += 1
        return (torch.full_like(x, float("nan")) if calls[0] in steps else x), y, n_labelled

    monkeypatch.setattr(loop, "next_batch", poisoned)


def all_finite(path) -> bool:
    return all(torch.isfinite(v).all() for v in checkpoint.load(path)["model"].values()
               if v.is_floating_point())


# tiny plan: warmup 1-4, dann-warmup 5-6, search 7-12, finetune 13-15; a checkpoint every 2 steps
def test_a_nan_stops_the_run_keeping_the_last_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    nan_batches(monkeypatch, 8)
    run = tmp_path / "run"
    assert cli.main(["train", "--preset", "smoke", "--out", str(run), *tiny]) == 2
    last = run / "checkpoints" / "last.pt"
    assert capsys.readouterr().err.splitlines() == [
        f"freqalign train: error: step 8/15 (search): non-finite quality loss; stopped, {last} "
        "kept (step 6); on_nonfinite=skip drops such steps"]
    assert checkpoint.load(last)["step"] == 6 and all_finite(last)
    assert not (run / "results.json").exists()


def test_skip_drops_the_step_and_counts_it(tiny, tmp_path, monkeypatch, capsys):
    nan_batches(monkeypatch, 3, 8)
    run = tmp_path / "run"
    assert cli.main(["train", "--preset", "smoke", "--out", str(run), *tiny,
                     "on_nonfinite=skip"]) == 0
    out = capsys.readouterr().out
    assert "step 3/15 (warmup): non-finite quality loss: step skipped (1 so far)" in out
    assert "step 8/15 (search): non-finite quality loss: step skipped (2 so far)" in out
    results = json.loads((run / "results.json").read_text())
    assert results["nonfinite_skipped"] == 2 and results["steps"] == 15
    assert all(v == v for v in results["target"].values())  # no NaN metric
    assert all_finite(run / "checkpoints" / "last.pt")


def test_skip_stops_after_max_nonfinite_in_a_row(tiny, tmp_path, monkeypatch, capsys):
    nan_batches(monkeypatch, 2, 5, 6)
    run = tmp_path / "run"
    assert cli.main(["train", "--preset", "smoke", "--out", str(run), *tiny,
                     "on_nonfinite=skip", "max_nonfinite=2"]) == 2
    last = run / "checkpoints" / "last.pt"
    assert capsys.readouterr().err.splitlines() == [
        f"freqalign train: error: step 6/15 (dann-warmup): non-finite quality loss, 2 steps in a "
        f"row (max_nonfinite=2); stopped, {last} kept (step 4)"]
    ck = checkpoint.load(last)
    assert ck["step"] == 4 and ck["nonfinite"] == [1, 0] and all_finite(last)


@pytest.mark.slow
def test_a_nan_in_one_process_stops_or_skips_in_every_process(tiny, tmp_path):
    """Under DDP a NaN batch in process 1 only: both processes stop at the same step (no hang,
    no process stepping alone), or with ``skip`` both drop the same steps and finish."""
    def torchrun(steps, run, *extra):
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node=2", os.path.join(ROOT, "tests", "nan_run.py"),
                               "1", steps, "train", "--preset", "smoke", "--device", "cpu",
                               "--out", str(run), *tiny, *extra],
                              cwd=ROOT, text=True, capture_output=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    stopped = torchrun("8", tmp_path / "stop")
    assert stopped.returncode != 0 and "exitcode  : 2" in stopped.stderr
    # the two processes write to one stderr: a line of one may land inside a line of the other
    errors = sorted(re.findall(r"freqalign train: error: ([^;]*);", stopped.stderr))
    assert errors == ["step 8/15 (search): non-finite gradient norm",  # process 0: its own loss
                      "step 8/15 (search): non-finite quality loss"], stopped.stderr[-3000:]
    assert checkpoint.load(tmp_path / "stop" / "checkpoints" / "last.pt")["step"] == 6
    skipped = torchrun("3,8", tmp_path / "skip", "on_nonfinite=skip")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    results = json.loads((tmp_path / "skip" / "results.json").read_text())
    assert results["nonfinite_skipped"] == 2
    assert all_finite(tmp_path / "skip" / "checkpoints" / "last.pt")
