"""A non-finite loss or gradient norm: the run stops with one line naming the step, the stage
and the value, keeping its last good checkpoint (``on_nonfinite=stop``), or drops the step and
counts it (``skip``), stopping after ``max_nonfinite`` in a row. The fault is a real NaN batch
fed to the real trainer."""
import json

import pytest
import torch

from freqalign import cli
from freqalign.train import checkpoint, loop

from tiny_run import make_tiny_data, tiny_overrides


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
