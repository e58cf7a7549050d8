"""Checkpoints and the embedded dataset cache hold data only and load without running code.

A malicious pickle (its ``__reduce__`` would create a marker file) is refused by every loader
and every CLI command that reads one, with one error line and exit status 2; the marker file
never appears.
"""
import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from freqalign import storage
from freqalign.data import embedded
from freqalign.errors import CheckpointError, MissingFileError
from freqalign.run import checkpoint
from freqalign.run.config import make_config, parse_overrides, save_yaml

from tiny_run import make_tiny_data, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Payload:
    """Unpickling this runs ``touch MARKER``: what an attacker's checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write_malicious(path, marker, fmt):
    """A checkpoint-shaped dict carrying the payload, as torch.save writes it ("zip") or as a
    bare pickle ("pickle")."""
    obj = {"model": {"w": torch.zeros(2)}, "config": {}, "extra": _Payload(marker)}
    if fmt == "zip":
        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)


@pytest.mark.parametrize("fmt", ["zip", "pickle"])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, fmt):
    path, marker = tmp_path / "evil.pt", tmp_path / "MARKER"
    write_malicious(path, marker, fmt)
    with pytest.raises(CheckpointError, match="refused to load") as err:
        checkpoint.load(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    if fmt == "zip":  # the protocol-2 pickle names the global too; torch.save's names it here
        assert "posix.system" in str(err.value) or "os.system" in str(err.value)
    assert not marker.exists()


def test_damaged_and_foreign_files_are_user_errors(tmp_path):
    garbage, empty, truncated, foreign = (tmp_path / n for n in ("garbage.pt", "empty.pt", "cut.pt", "other.pt"))
    garbage.write_bytes(b"not a torch file at all")
    empty.write_bytes(b"")
    torch.save({"model": torch.zeros(1000), "config": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (garbage, empty, truncated):
        with pytest.raises(CheckpointError, match="refused to load: not a torch file"):
            checkpoint.load(str(path))
    with pytest.raises(CheckpointError, match="not a freqalign checkpoint"):
        checkpoint.load(str(foreign))
    with pytest.raises(MissingFileError, match="no checkpoint at"):
        checkpoint.load(str(tmp_path / "nowhere.pt"))


def test_rng_state_round_trips_through_a_safe_checkpoint(tmp_path):
    """Every RNG (Python, NumPy, torch, named generators) is restored bit-exactly from a file
    loaded with weights_only=True."""
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # a cached Gaussian in NumPy's state
    gens = {"g": torch.Generator().manual_seed(4)}
    path = tmp_path / "ck.pt"
    checkpoint.save({"model": {}, "config": {}, "rng": checkpoint.rng_state(gens)}, str(path))
    expected = (random.random(), np.random.standard_normal(3), torch.rand(3), torch.rand(3, generator=gens["g"]))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    gens["g"].manual_seed(9)
    checkpoint.set_rng_state(checkpoint.load(str(path))["rng"], gens)
    got = (random.random(), np.random.standard_normal(3), torch.rand(3), torch.rand(3, generator=gens["g"]))
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


def test_checkpoint_of_before_the_config_renames_loads(tmp_path):
    """A checkpoint whose saved config has the old key names (``search_step``, ``search_steps``)
    rebuilds its model and scores, with the values under the new names."""
    import freqalign
    from freqalign.method.model import build_model
    from freqalign.run.config import RENAMED

    cfg = make_config("smoke", overrides={"steps_per_position": 3})
    old = {next((o for o, n in RENAMED.items() if n == k), k): v for k, v in cfg.to_dict().items()}
    path = tmp_path / "old.pt"
    checkpoint.save({"model": build_model(cfg).state_dict(), "config": old}, str(path))
    with pytest.warns(FutureWarning, match="deprecated"):
        scorer = freqalign.load_scorer(str(path), device="cpu")
    assert scorer.cfg == cfg and scorer.cfg.steps_per_position == 3
    scores = scorer(torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0)))
    assert scores.shape == (2,) and bool(((scores >= 0) & (scores <= 1)).all())


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "x.pt"
    storage.save({"a": torch.arange(3)}, path)
    storage.save({"a": torch.arange(4)}, path)
    assert torch.equal(storage.load(path)["a"], torch.arange(4))
    assert os.listdir(path.parent) == ["x.pt"]


def test_embedded_cache_round_trips_and_refuses_a_malicious_file(tmp_path):
    tiny = dict(size=32, n_per_domain=50, progress=False)
    first = embedded.load_embedded("target", cache_dir=tmp_path, seed=5, **tiny)
    path = embedded.cache_path(tmp_path, seed=5, size=32, n_per_domain=50)
    stored = torch.load(path, weights_only=True)  # data only: loads under the strict unpickler
    assert isinstance(stored["target"]["scores"], torch.Tensor)
    again = embedded.load_embedded("target", cache_dir=tmp_path, seed=5, **tiny)
    assert torch.equal(first.images, again.images)
    np.testing.assert_array_equal(first.scores, again.scores)
    for key, value in first.meta.items():
        assert type(again.meta[key]) is type(value), key
    marker = tmp_path / "MARKER"
    write_malicious(path, marker, "zip")
    with pytest.raises(CheckpointError, match="refused to load"):
        embedded.load_embedded("target", cache_dir=tmp_path, seed=5, **tiny)
    assert not marker.exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "freqalign", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def _refused_in_one_line(out, path):
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[0].startswith("freqalign ") and str(path) in lines[0] and "refused to load" in lines[0]


@pytest.mark.slow
def test_cli_commands_refuse_a_malicious_checkpoint(tmp_path):
    """``score``, ``eval`` and ``train --resume`` each exit 2 with one line; nothing runs."""
    specs = make_tiny_data(str(tmp_path / "data"))
    marker = tmp_path / "MARKER"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = make_config("smoke", overrides=parse_overrides(tiny_overrides(specs)))
    save_yaml(cfg, str(run / "config.yaml"))
    evil = run / "checkpoints" / "last.pt"
    write_malicious(evil, marker, "zip")
    images = os.path.dirname(specs["target"].split(":", 1)[1])
    _refused_in_one_line(_cli("score", str(evil), images), evil)
    _refused_in_one_line(_cli("eval", str(evil), "--dataset", specs["target"]), evil)
    _refused_in_one_line(_cli("train", "--resume", str(run), "--device", "cpu"), evil)
    assert not marker.exists()
