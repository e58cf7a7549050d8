"""Two CPU processes under torchrun (gloo): both domains sharded, rank 0 writes, results
gathered over ranks."""
import os
import subprocess
import sys

import pytest

from tiny_run import assert_metrics_match_predictions, make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    assert out.stdout.count("target test") == 1  # only rank 0 reports
    # metrics cover the whole target test split, gathered from both ranks, and are those of
    # the saved predictions (recomputed by scipy.stats)
    results = assert_metrics_match_predictions(run)
    assert len(results["search"]) == 3 and results["selected_window"]["size"] == 4
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "report.md").is_file()
    assert not list(run.glob("**/*.tmp*"))  # atomic writes left nothing behind
