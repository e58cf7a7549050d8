"""The ``freqalign`` command line: help, info, a tiny train + eval, user errors as one clear
line with exit status 2 (never a traceback), and bugs with their traceback."""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import yaml
from PIL import Image

import freqalign
from freqalign import cli as cli_module
from freqalign import storage
from freqalign.cli import build_parser
from freqalign.data.registry import known_datasets
from freqalign.method.model import build_model
from freqalign.run.config import ALLOWED, Config, make_config

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


def test_version():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout == f"freqalign {freqalign.__version__}\n"


def _actions(parser):
    """Every (command, action) of ``parser`` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from ((f"{name} {a.dest}", a) for _, a in _actions(sub))
        else:
            yield action.dest, action


def test_every_option_has_help_and_examples_name_known_datasets():
    parser = build_parser()
    missing = [name for name, action in _actions(parser)
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []
    text = parser.format_help() + "".join(a.help for _, a in _actions(parser) if a.help)
    named = set(re.findall(r"\bembedded-[\w-]+", text))
    assert "embedded-v7-target" in named and named <= set(known_datasets())


def test_config_show_is_the_resolved_config():
    out = cli("config", "--show", "--preset", "smoke", "--method", "dann", "lr=0.01", "window_size=8")
    assert out.returncode == 0, out.stderr
    expected = make_config("smoke", overrides={"lr": 0.01, "window_size": 8}, method="dann").to_dict()
    assert yaml.safe_load(out.stdout) == expected
    assert list(yaml.safe_load(out.stdout)) == [f.name for f in fields(Config)]  # in the dataclass's order
    bad = cli("config", "--show", "lr=-1")
    assert bad.returncode == 2 and "config lr=-1" in bad.stderr


def test_config_list_keys_gives_each_default_and_what_it_allows(capsys):
    assert cli_module.main(["config", "--list-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["key", "default", "allows"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == [f.name for f in fields(Config)]
    assert rows["criterion"].split(None, 2) == ["criterion", "dev", str(ALLOWED["criterion"])]
    assert rows["lr"].split(None, 2) == ["lr", "0.002", "> 0"]


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
    scores = json.loads(scores_file.read_text())["scores"]
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


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """An untrained smoke checkpoint on 32 x 32 crops and a folder of three images."""
    cfg = make_config("smoke", overrides={"image_size": 32, "cnn_width": 16, "disc_hidden": 16,
                                          "regressor_hidden": 8, "eval_crops": 1, "progress": False,
                                          "device": "cpu"})
    folder = tmp_path_factory.mktemp("score")
    storage.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, folder / "best.pt")
    (folder / "images").mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b", "c"):
        pixels = np.kron(rng.random((4, 4, 3)) * rng.random(), np.ones((8, 8, 1)))  # 32 x 32, dimmed
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / "images" / f"{name}.png")
    return folder


def test_score_files_name_the_metric_and_sort_by_score(scored, tmp_path, capsys):
    ck, images = str(scored / "best.pt"), str(scored / "images")
    assert cli_module.main(["score", ck, images, "--out", str(tmp_path / "s.json"), "--device", "cpu"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "freqalign:freqalign (higher is better)"
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["metric"] == "freqalign:freqalign" and saved["higher_is_better"] is True
    by_path = [(row["path"], row["score"]) for row in saved["scores"]]
    assert [p for p, _ in by_path] == [os.path.join(images, f"{n}.png") for n in "abc"]
    assert len({s for _, s in by_path}) == 3  # distinct scores, so the order below is decided

    assert cli_module.main(["score", ck, images, "--sort", "score", "--out", str(tmp_path / "s.csv"),
                            "--device", "cpu"]) == 0
    best_first = sorted(by_path, key=lambda row: -row[1])
    shown = [line.split()[0] for line in capsys.readouterr().out.splitlines()[3:6]]
    assert shown == [p for p, _ in best_first]
    with open(tmp_path / "s.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "score", "metric", "higher_is_better"]
    assert [(p, float(s)) for p, s, _, _ in rows[1:]] == best_first
    assert {(m, h) for _, _, m, h in rows[1:]} == {("freqalign:freqalign", "true")}


def test_each_preset_finding_cites_a_committed_result_with_its_numbers():
    """The line the trainer prints under a preset's results points at a committed compare
    whose primary difference is the one it quotes."""
    for preset, (path, found) in cli_module.FINDINGS.items():
        report = json.load(open(os.path.join(ROOT, path.replace(".md", ".json"))))
        assert report["config"]["preset"] == preset
        primary = report["paired"]["freqalign - dann"]
        assert f"freqalign - dann {primary['mean']:+.3f} [{primary['low']:+.3f}, " \
               f"{primary['high']:+.3f}]" in found
