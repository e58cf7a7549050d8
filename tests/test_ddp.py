"""Two CPU processes under torchrun (gloo): both domains sharded, rank 0 writes, results
gathered over ranks."""
import json
import os
import subprocess
import sys

import numpy as np

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    results = json.loads((run / "results.json").read_text())
    # metrics cover the whole target test split, gathered from both ranks
    assert results["sizes"]["tgt_test"] > 0
    predictions = np.load(run / "target_predictions.npz")
    assert len(predictions["pred"]) == results["sizes"]["tgt_test"]
    assert len(results["search"]) == 3 and results["selected_window"]["size"] == 4
    assert all(-1 <= results["target"][k] <= 1 for k in ("srcc", "plcc", "krcc"))
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "report.md").is_file()
    assert not list(run.glob("**/*.tmp*"))  # atomic writes left nothing behind
