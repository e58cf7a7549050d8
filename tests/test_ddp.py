"""Two CPU processes under torchrun (gloo): both domains sharded, rank 0 writes, results
gathered over ranks; every rank its own random streams, restored by a resume."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tiny_run import assert_metrics_match_predictions, make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _table_rows(stdout: str) -> int:
    """How many final result tables ``stdout`` holds (their "target test" row)."""
    return sum(line.startswith("target test ") for line in stdout.splitlines())


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "freqalign", "train", "--preset", "smoke", "--device", "cpu", "--out", str(run),
           *tiny]
    out = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert _table_rows(out.stdout) == 1  # only rank 0 reports
    # metrics cover the whole target test split, gathered from both ranks, and are those of
    # the saved predictions (recomputed by scipy.stats)
    results = assert_metrics_match_predictions(run)
    assert len(results["search"]) == 3 and results["selected_window"]["size"] == 4
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "report.md").is_file()
    assert not list(run.glob("**/*.tmp*"))  # atomic writes left nothing behind


def test_each_process_resumes_its_own_random_states():
    from freqalign.errors import ConfigError
    from freqalign.run.checkpoint import rank_rng

    states = [{"rank": 0}, {"rank": 1}]
    assert rank_rng(states, 1, 2) == {"rank": 1}
    assert rank_rng({"rank": 0}, 0, 1) == {"rank": 0}  # a one-process checkpoint of before
    with pytest.raises(ConfigError, match="resume or fork it with 2"):
        rank_rng(states, 0, 1)


def _torchrun(*args):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *args], cwd=ROOT, text=True, capture_output=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _draws(folder):
    return [[json.loads(line) for line in (folder / f"rank{r}.jsonl").read_text().splitlines()]
            for r in range(2)]


@pytest.mark.slow
def test_ranks_draw_their_own_crops_and_a_killed_run_resumes_exactly(tmp_path):
    """Every rank has its own crop and dropout streams (they differ at every batch), and a
    2-process run killed in the DANN warm-up and resumed draws, per rank, exactly what the
    uninterrupted run drew from the checkpoint on, and ends with the same model. (Killed
    there, not at a search position, whose start restores every rank's state from its own
    search-origin file and would hide a resume that restored the wrong ones.)"""
    from test_resume import assert_same_run

    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    script = os.path.join(ROOT, "tests", "draws_run.py")
    train = ["train", "--preset", "smoke", "--device", "cpu", *tiny]
    ref, run = tmp_path / "reference", tmp_path / "run"
    full = _torchrun(script, str(tmp_path / "draws-reference"), "0", *train, "--out", str(ref))
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _torchrun(script, str(tmp_path / "draws-killed"), "5", *train, "--out", str(run))
    assert killed.returncode != 0 and not (run / "results.json").exists()
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step == 4  # the kill lost step 5, which the resumed run replays
    resumed = _torchrun(script, str(tmp_path / "draws-resumed"), "0", "train", "--resume",
                        str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    reference = _draws(tmp_path / "draws-reference")
    assert len(reference[0]) == len(reference[1]) == 15  # one batch per optimizer step
    for a, b in zip(*reference):
        assert a["crops"] != b["crops"] and a["dropout"] != b["dropout"]
    for rank, draws in enumerate(_draws(tmp_path / "draws-resumed")):
        assert draws == reference[rank][step:]
    assert_same_run(json.loads((run / "results.json").read_text()),
                    json.loads((ref / "results.json").read_text()), str(run), str(ref))
