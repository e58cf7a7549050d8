"""Disk faults: a run folder that cannot be written, and a checkpoint write that fails midway
(a full disk), are one line naming the path and the errno; the previous checkpoint stays
intact, loadable, and resumable."""
import errno
import io
import os

import pytest
import torch

from freqalign import cli
from freqalign.run import checkpoint

from tiny_run import make_tiny_data, tiny_overrides


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_overrides(make_tiny_data(str(tmp_path_factory.mktemp("tiny"))))


def refused_line(capsys, tiny, out) -> str:
    assert cli.main(["train", "--preset", "smoke", "--out", str(out), *tiny]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_file_in_the_way_of_the_run_folder(tiny, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "run"
    assert refused_line(capsys, tiny, out) == \
        f"freqalign train: error: cannot write to run folder {out}: Not a directory (ENOTDIR)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir(mode=0o555)
    assert refused_line(capsys, tiny, out) == \
        f"freqalign train: error: cannot write to run folder {out}: Permission denied (EACCES)"


def disk_full_at(monkeypatch, nth: int) -> None:
    """The ``nth`` write of a ``last.pt`` stops halfway with ENOSPC, as a full disk does."""
    save, writes = torch.save, [0]

    def filling(obj, f, *args, **kwargs):
        if os.path.basename(getattr(f, "name", "")).startswith("last.pt"):
            writes[0] += 1
            if writes[0] == nth:
                data = io.BytesIO()
                save(obj, data, *args, **kwargs)
                f.write(data.getvalue()[:len(data.getvalue()) // 2])
                f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling)


def test_a_full_disk_midway_keeps_the_previous_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    disk_full_at(monkeypatch, 2)  # last.pt of step 4; the one of step 2 was written
    last = run / "checkpoints" / "last.pt"
    assert refused_line(capsys, tiny, run) == (
        f"freqalign train: error: cannot write {last}: No space left on device (ENOSPC); the "
        "file there before is unchanged")
    assert checkpoint.load(last)["step"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    monkeypatch.undo()  # space again
    assert cli.main(["train", "--resume", str(run)]) == 0
    assert (run / "results.json").is_file()
