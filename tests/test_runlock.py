"""One run per folder: a second run writing a folder that a live run holds is refused with one
line naming the holder; a run killed with kill -9 leaves no stuck lock (the kernel drops it)."""
import os
import signal
import subprocess
import sys

from freqalign import cli

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_second_run_is_refused_and_a_killed_run_leaves_no_lock(tmp_path, capsys):
    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "freqalign", "train", "--preset", "smoke",
                              "--out", str(run), *tiny], cwd=ROOT, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in first.stdout:
            if line.startswith("step     4/15"):  # training, with last.pt of step 2 written
                first.send_signal(signal.SIGSTOP)  # holds the folder as long as we like
                break
        assert cli.main(["train", "--preset", "smoke", "--out", str(run), *tiny]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(
            f"freqalign train: error: run folder {run} is in use by pid {first.pid} on ")
        assert err[0].endswith("; wait for that run to end, or give this one another --out")
    finally:
        first.kill()  # a crash: no cleanup of any kind
        first.wait()
    assert (run / "run.lock").is_file()  # left behind, and not in the way
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert (run / "results.json").is_file()
