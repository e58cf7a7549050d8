"""Pre-emption: SIGTERM or SIGINT in any stage finishes the step, saves ``last.pt``, prints one
line and exits with 128 + the signal number; ``--resume`` then ends exactly as a run that was
never stopped. Real signals to real processes: sent by the test, or by the run itself at a
chosen step and again in the middle of the checkpoint write (``signal_run.py``)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from freqalign.run import checkpoint

from test_resume import ROOT, assert_same_run, cli, setup  # noqa: F401 - the fixture

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def stopped_line(run, signame, step, stage):
    return (f"freqalign train: stopped by {signame} after step {step}/15 ({stage}): saved "
            f"{run / 'checkpoints' / 'last.pt'}; continue with freqalign train --resume {run}")


def resume_and_compare(setup, run):
    _, reference, reference_run = setup
    resumed = cli("train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(json.loads((run / "results.json").read_text()), reference, str(run),
                    reference_run)


# tiny plan: warmup 1-4, dann-warmup 5-6, search 7-12, finetune 13-15; checkpoints at even steps
@pytest.mark.slow
@pytest.mark.parametrize("step,signame,stage", [(3, "INT", "warmup"), (13, "TERM", "finetune")])
def test_a_signal_twice_saves_once_and_resumes_identically(setup, tmp_path, step, signame, stage):
    tiny = setup[0]
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "signal_run.py"), str(step),
                          signame, "train", "--preset", "smoke", "--out", str(run), *tiny],
                         cwd=ROOT, text=True, capture_output=True, timeout=300, env=ENV)
    signum = getattr(signal, f"SIG{signame}")
    assert out.returncode == 128 + signum, out.stderr[-2000:]
    assert out.stderr.splitlines()[-1] == stopped_line(run, f"SIG{signame}", step, stage)
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == step
    assert not list(run.glob("**/*.tmp")) and not (run / "results.json").exists()
    resume_and_compare(setup, run)


@pytest.mark.slow
def test_sigterm_from_outside_stops_at_a_step_and_resumes_identically(setup, tmp_path):
    tiny = setup[0]
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "freqalign", "train", "--preset", "smoke",
                             "--out", str(run), *tiny], cwd=ROOT, text=True, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:  # in the search stage
        if line.startswith("step     8/15"):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    step = checkpoint.load(run / "checkpoints" / "last.pt")["step"]
    assert 8 <= step < 15
    stage = "search" if step <= 12 else "finetune"
    assert err.splitlines()[-1] == stopped_line(run, "SIGTERM", step, stage)
    resume_and_compare(setup, run)


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_and_resumes_identically(tmp_path):
    """SLURM signals torchrun, which passes SIGTERM on to its processes: they agree on a step,
    save once, print one line; a resume under torchrun ends as the run never stopped."""
    from tiny_run import make_tiny_data, tiny_overrides

    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "freqalign", "train"]
    args = ["--preset", "smoke", "--device", "cpu", *tiny]
    env = {**ENV, "OMP_NUM_THREADS": "1"}
    ref, run = tmp_path / "reference", tmp_path / "run"
    full = subprocess.run(torchrun + args + ["--out", str(ref)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr[-3000:]
    proc = subprocess.Popen(torchrun + args + ["--out", str(run)], cwd=ROOT, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line.startswith("step     4/15"):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("freqalign train: stopped by")]
    step = checkpoint.load(run / "checkpoints" / "last.pt")["step"]
    assert lines == [stopped_line(run, "SIGTERM", step, "warmup" if step <= 4 else
                                  "dann-warmup" if step <= 6 else "search")], err[-3000:]
    resumed = subprocess.run(torchrun + ["--resume", str(run)], cwd=ROOT, text=True,
                             capture_output=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(json.loads((run / "results.json").read_text()),
                    json.loads((ref / "results.json").read_text()), str(run), str(ref))
