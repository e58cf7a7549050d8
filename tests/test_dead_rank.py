"""Dead ranks and more than one machine: under torchrun, a process killed with SIGKILL makes
the others stop within a bounded time with one line naming it (not hang in a collective),
its last checkpoint intact; and a c10d rendezvous on localhost with two "machines" (two
torchrun agents, one process each) trains as one run."""
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from freqalign.run import checkpoint

from tiny_run import assert_metrics_match_predictions, make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", *args]


def _table_rows(stdout: str) -> int:
    """How many final result tables ``stdout`` holds (their "target test" row)."""
    return sum(line.startswith("target test ") for line in stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("dead,how", [(1, "KILL"), (0, "KILL"), (1, "STOP")],
                         ids=["rank1-killed", "rank0-killed", "rank1-hung"])
def test_a_lost_rank_stops_the_others_with_one_line(tmp_path, dead, how):
    """Killed: the others see its connections close. Hung (SIGSTOP: alive, silent, as a node
    that stopped answering): they give up after ``ddp_timeout`` (5 s here) instead of hanging."""
    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    run = tmp_path / "run"
    t0 = time.monotonic()
    out = subprocess.run(torchrun("--standalone", "--nproc_per_node=2",
                                  os.path.join(ROOT, "tests", "dead_rank_run.py"), str(dead), "5",
                                  how, "train", "--preset", "smoke", "--device", "cpu", "--out",
                                  str(run), *tiny, "ddp_timeout=5"),
                         cwd=ROOT, text=True, capture_output=True, timeout=300, env=ENV)
    assert out.returncode != 0
    assert time.monotonic() - t0 < 150  # the run alone takes about 20 s; torchrun then
    # gives a hung process 30 s to go before it kills it
    lines = [line for line in out.stderr.splitlines() if "freqalign train: error:" in line]
    assert len(lines) == 1 and re.fullmatch(
        rf"(\[rank\d\]: )?freqalign train: error: lost process {dead} of 2: it died or its "
        rf"machine stopped answering; stopping too \(resume from {run}/checkpoints/last.pt with "
        rf"freqalign train --resume {run}\)", lines[0]), out.stderr[-3000:]
    assert re.search(r"exitcode\s*: 2 ", out.stderr)  # the survivor's one-line exit
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_c10d_rendezvous_of_two_machines_on_localhost(tmp_path):
    tiny = tiny_overrides(make_tiny_data(str(tmp_path / "data")))
    run = tmp_path / "run"
    launch = torchrun("--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
                      f"--rdzv_endpoint=localhost:{free_port()}", "--rdzv_id=freqalign-test",
                      "-m", "freqalign", "train", "--preset", "smoke", "--device", "cpu", "--out",
                      str(run), *tiny)
    nodes = [subprocess.Popen(launch, cwd=ROOT, text=True, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    outs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outs):
        assert node.returncode == 0, err[-3000:]
    assert sum(_table_rows(o) for o, _ in outs) == 1  # only rank 0 reports
    results = assert_metrics_match_predictions(run)
    assert len(results["search"]) == 3
