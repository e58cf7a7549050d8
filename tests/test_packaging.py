"""Packaging (issue 24): the metadata a packager reads, a wheel built from the sdist in a clean
folder and imported in a fresh interpreter, and the compiled extension refused under another
torch (one warning, the torch backend instead)."""
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest
import torch

from freqalign.ops import compiled

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNING_TORCH = torch.__version__.split("+")[0]


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
        return tomllib.load(file)


def test_metadata():
    """SPDX license with its file, authors, classifiers without a license classifier (setuptools
    refuses both), and the build pinned to the torch the Makefile installs."""
    meta = _pyproject()
    project = meta["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in open(os.path.join(ROOT, "LICENSE")).read()
    assert project["authors"] == [{"name": "freqalign developers"}]
    assert project["classifiers"] and not any(c.startswith("License ::") for c in project["classifiers"])
    requires = meta["build-system"]["requires"]
    assert "setuptools>=77" in requires  # the first setuptools with SPDX license strings
    pinned = [r for r in requires if r.startswith("torch")]
    assert pinned == [f"torch=={RUNNING_TORCH}"], "the build pin and the tested torch differ"
    assert f"torch=={RUNNING_TORCH}" in open(os.path.join(ROOT, "Makefile")).read()


def test_the_extension_names_the_torch_it_was_built_for():
    """The marker csrc/ops.cpp embeds is found in the built file and names the running torch."""
    spec = importlib.util.find_spec("freqalign._C")
    if spec is None:
        pytest.skip("freqalign._C is not built")
    assert compiled.built_for(spec.origin) == RUNNING_TORCH


MISMATCH = """
import warnings, torch
real = torch.__version__
torch.__version__ = "2.3.0"  # as if the extension had been built for another torch
with warnings.catch_warnings(record=True) as at_import:
    warnings.simplefilter("always")
    import freqalign
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    pooled = freqalign.freq_pool(x, [(0, 0)], norm="mean")
torch.testing.assert_close(pooled, x.mean((2, 3)))
lines = [str(w.message) for w in at_import if "freqalign" in str(w.message)]
print(len(lines))
print(lines[0] if lines else "")
print(freqalign.backends()["cpu"])
"""


def test_an_extension_built_for_another_torch_is_refused_with_one_warning():
    """Simulated mismatch (torch.__version__ patched before the import): exactly one warning line,
    naming both versions; the cpu backend is off and the ops run on the torch backend."""
    spec = importlib.util.find_spec("freqalign._C")
    if spec is None:
        pytest.skip("freqalign._C is not built")
    env = {k: v for k, v in os.environ.items() if k != "FREQALIGN_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", MISMATCH], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, line, status = proc.stdout.strip().split("\n")
    assert count == "1", proc.stdout
    assert f"built for torch {RUNNING_TORCH}, but torch 2.3.0 is running" in line and "\n" not in line
    assert status.startswith("unavailable (ImportError: freqalign._C was built for torch")


# -- a wheel from the sdist ----------------------------------------------------------------------

def _tracked_files() -> list:
    if not os.path.isdir(os.path.join(ROOT, ".git")) and not os.path.isfile(os.path.join(ROOT, ".git")):
        pytest.skip("needs a git checkout: the sdist is built from the tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split("\0") if name and os.path.isfile(os.path.join(ROOT, name))]


def _checkout_copy(dest: str) -> list:
    """Copy the tracked files (no build outputs, no local links) to ``dest``; return their names."""
    names = _tracked_files()
    for name in names:
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(dest, name))
    return names


def _build_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FREQALIGN_BUILD_EXT")}
    env.update(FREQALIGN_BUILD_CUDA="0", MAX_JOBS=env.get("MAX_JOBS", "2"))
    return env


IMPORT_WHEEL = """
import importlib.metadata, os, sys, torch, freqalign
assert freqalign.__file__.startswith(sys.argv[1]), freqalign.__file__
assert freqalign.backends()["cpu"] == "available", freqalign.backends()
x = torch.randn(2, 8, 7, 7, dtype=torch.float64)
torch.testing.assert_close(freqalign.freq_pool(x, [(0, 0)], norm="mean"), x.mean((2, 3)))
print(importlib.metadata.metadata("freqalign")["License-Expression"])
"""


@pytest.mark.slow  # compiles the C++ extension: minutes
def test_wheel_from_sdist_builds_and_imports(tmp_path):
    """The sdist holds every tracked source the build reads (csrc/ with its headers and *.inc,
    kernels/); ``pip wheel`` builds it in a clean folder; the unpacked wheel imports elsewhere
    with its compiled kernels."""
    source, dist, wheels, site = (tmp_path / name for name in ("source", "dist", "wheels", "site"))
    names = _checkout_copy(str(source))
    build = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                            "print(build_meta.build_sdist(sys.argv[1]))", str(dist)],
                           cwd=source, capture_output=True, text=True, timeout=600, env=_build_env())
    assert build.returncode == 0, build.stderr[-3000:]
    sdist = dist / build.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = [n for n in names if n.startswith(("csrc/", "kernels/", "freqalign/")) or n in ("LICENSE", "setup.py")]
    assert not set(needed) - members, f"missing from the sdist: {sorted(set(needed) - members)}"

    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                            "--no-cache-dir", "-w", str(wheels), str(sdist)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=3000, env=_build_env())
    assert wheel.returncode == 0, wheel.stdout[-3000:] + wheel.stderr[-3000:]
    print(next(line.strip() for line in wheel.stdout.splitlines() if "Created wheel" in line))
    (built,) = wheels.glob("freqalign-*.whl")
    with zipfile.ZipFile(built) as archive:
        archive.extractall(site)
        assert any(n.startswith("freqalign/_C") and n.endswith(".so") for n in archive.namelist())
        assert "freqalign/kernels/pool.py" in archive.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", IMPORT_WHEEL, str(site)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "MIT"
