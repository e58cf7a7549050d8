"""The ``freqalign`` command line: help, info, a tiny train + eval, and user errors as one
clear line with a non-zero exit (never a traceback)."""
import json
import os
import subprocess
import sys

import pytest

from freqalign.cli import build_parser

from tiny_run import make_tiny_data, tiny_overrides

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


def test_train_then_eval(tiny, tmp_path):
    run = tmp_path / "run"
    out = cli("train", "--preset", "smoke", "--seed", "1", "--out", str(run), *tiny)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "target test" in out.stdout and "selected window" in out.stdout
    assert json.loads((run / "results.json").read_text())["seed"] == 1
    target = [t for t in tiny if t.startswith("target=")][0].split("=", 1)[1]
    ev = cli("eval", str(run / "checkpoints" / "best.pt"), "--dataset", target)
    assert ev.returncode == 0, ev.stderr[-2000:]
    metrics = json.loads(ev.stdout)
    assert metrics["n"] == 48 and -1 <= metrics["srcc"] <= 1
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
