"""The ``freqalign`` command line: help, info, a tiny train + eval, user errors as one clear
line with exit status 2 (never a traceback), and bugs with their traceback."""
import json
import os
import subprocess
import sys

import pytest

from freqalign import cli as cli_module
from freqalign.cli import build_parser

from tiny_run import assert_metrics_match_predictions, make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "freqalign", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))


def test_help_lists_every_subcommand():
    text = build_parser().format_help()
    for command in ("train", "compare", "eval", "score", "info"):
        assert command in text
    out = cli("--help")
    assert out.returncode == 0 and "compare" in out.stdout


def test_info_reports_versions_backends_devices():
    out = cli("info")
    assert out.returncode == 0, out.stderr
    for word in ("torch", "backends:", "cuda", "embedded-source"):
        assert word in out.stdout


@pytest.mark.slow
def test_train_then_eval(tiny, tmp_path):
    run = tmp_path / "run"
    out = cli("train", "--preset", "smoke", "--seed", "1", "--out", str(run), *tiny)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "target test" in out.stdout and "selected window" in out.stdout
    assert assert_metrics_match_predictions(run)["seed"] == 1
    target = [t for t in tiny if t.startswith("target=")][0].split("=", 1)[1]
    evals = [cli("eval", str(run / "checkpoints" / "best.pt"), "--dataset", target) for _ in range(2)]
    assert all(ev.returncode == 0 for ev in evals), evals[0].stderr[-2000:]
    metrics = json.loads(evals[0].stdout)
    assert metrics["n"] == 48 and metrics["method"] == "freqalign"
    assert json.loads(evals[1].stdout) == metrics  # deterministic: the same numbers twice
    images = os.path.dirname(target.split(":", 1)[1])
    scores_file = tmp_path / "scores.json"
    sc = cli("score", str(run / "checkpoints" / "best.pt"), images, "--out", str(scores_file),
             "--batch-size", "5")
    assert sc.returncode == 0, sc.stderr[-2000:]
    scores = json.loads(scores_file.read_text())
    assert len(scores) == 48 and f"wrote 48 scores to {scores_file}" in sc.stdout
    assert all(0 <= row["score"] <= 1 for row in scores)


def _one_line_error(out, *words):
    assert out.returncode == 2, (out.returncode, out.stderr[-1500:])
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    first = [i for i, line in enumerate(lines) if line.startswith("freqalign ")]
    assert first, out.stderr[-1500:]
    message = "\n".join(lines[first[0]:])  # the error line (a dataset error adds its layout help)
    assert ": error: " in lines[first[0]]
    for w in words:
        assert w in message, message


def test_user_error_in_process_is_one_line(capsys, tmp_path):
    missing = tmp_path / "missing.yaml"
    assert cli_module.main(["train", "--config", str(missing)]) == 2
    expected = f"freqalign train: error: --config: no such file {str(missing)!r}"
    assert capsys.readouterr().err.splitlines() == [expected]
    assert cli_module.main(["train", "--preset", "smoke", "--device", "tpu", "--out", str(tmp_path)]) == 2
    assert "config device='tpu': must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_bugs_keep_their_traceback(monkeypatch):
    """Only a FreqAlignError is a user mistake: any other exception, even a ValueError, propagates."""
    def broken(args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(cli_module, "cmd_info", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        cli_module.main(["info"])


@pytest.mark.parametrize("argv", [["score", "ck.pt", "img", "--out", "scores.txt"],
                                  ["score", "ck.pt", "img", "--batch-size", "0"],
                                  ["eval", "ck.pt", "--dataset", "x", "--batch-size", "two"],
                                  ["compare", "--seeds", "0"]])
def test_bad_argument_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli_module.main(argv)
    assert stop.value.code == 2 and "error: argument" in capsys.readouterr().err


@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path):
    _one_line_error(cli("train", "--preset", "smoke", "source=nope", "--out", str(tmp_path / "a")),
                    "unknown dataset", "nope")
    _one_line_error(cli("train", "--preset", "smoke", "grid=9", "--out", str(tmp_path / "b")),
                    "grid=9", "feature map")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nwarmup_step: 3\n")
    _one_line_error(cli("train", "--config", str(bad)), "unknown config key", "warmup_step")
    _one_line_error(cli("train", "--config", str(tmp_path / "missing.yaml")), "no such file")
    _one_line_error(cli("train", "--resume", str(tmp_path / "nowhere")), "--resume")
    _one_line_error(cli("eval", str(tmp_path / "none.pt"), "--dataset", "embedded-target"),
                    "no checkpoint")
    _one_line_error(cli("train", "--preset", "smoke", "backbone=resnet50",
                        f"backbone_weights={tmp_path / 'r50.pth'}", "image_size=64"),
                    "backbone_weights", "IMAGENET1K_V2", "--backbone-weights")
    _one_line_error(cli("train", "--preset", "smoke", "source=csv:/no/such.csv"), "csv")
