"""The GPU check's dry run on the CPU (``benchmarks/gpu/gpu_check.sh --dry-run``, issue #11).

A GPU is lent rarely, for minutes, and what a run leaves in ``$OUT`` comes back only within
the device machine's rule: at most 8 files, at most 2 folders down, names of letters, digits,
'.', '_' and '-'. The dry run goes through the same script on the CPU (each section's Python
side at tiny sizes: the test command collected, the sanitizer driver, the smoke trainer on a
tiny CSV dataset, the paper-configuration step check, the benchmark, the report), so these
tests check the file rule and that ``h200.md`` / ``h200.json`` are written and parse, with
every section accounted for. The report's parsers are also checked on synthetic logs (a
pytest run cut by SIGINT, compute-sanitizer summaries).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from benchmarks.gpu import gpu_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu", "gpu_check.sh")

NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """``(completed process, $OUT)`` of one dry run."""
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils' timeout")
    out = tmp_path_factory.mktemp("gpu_out")
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, GPU_CHECK_SECONDS="360")
    env.pop("GPU_CHECK_KEEP_WORK", None)
    proc = subprocess.run(["bash", SCRIPT, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    return proc, out


@pytest.mark.slow  # the dry run takes about 25 s: `make test` runs it, `make test-fast` not
def test_dry_run_succeeds(dry_run):
    proc, _ = dry_run
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "report: failed" not in proc.stdout, proc.stdout[-4000:]


@pytest.mark.slow  # the dry run takes about 25 s: `make test` runs it, `make test-fast` not
def test_out_follows_the_device_rule(dry_run):
    _, out = dry_run
    files = []
    for root, dirs, names in os.walk(out):
        depth = len(os.path.relpath(root, out).split(os.sep)) if root != str(out) else 0
        for name in dirs + names:
            assert NAME.match(name), f"{name!r}: only [A-Za-z0-9._-] comes back"
        for name in names:
            assert depth <= 2, f"{os.path.join(root, name)} is more than 2 folders down"
            path = os.path.join(root, name)
            assert os.path.isfile(path) and not os.path.islink(path)
            files.append(os.path.relpath(path, out))
    assert len(files) <= 8, files
    assert sorted(files) == ["gpu_check.log", "h200.json", "h200.md", "logs.tar.gz"]
    assert gpu_report.check_out(str(out)) == []


@pytest.mark.slow  # the dry run takes about 25 s: `make test` runs it, `make test-fast` not
def test_report_is_written_and_parses(dry_run):
    _, out = dry_run
    with open(out / "h200.json") as fh:
        report = json.load(fh)
    assert report["dry_run"] is True and report["budget_s"] == 360
    sections = report["sections"]
    assert [name for name, _ in gpu_report.SECTIONS] == list(sections)[:len(gpu_report.SECTIONS)]
    for name in ("env", "tests_cuda", "sanitize_memcheck", "smoke", "train", "bench"):
        assert sections[name]["status"] == "ok", (name, sections[name])
    for name in ("build", "tests_triton", "tests_torch", "sanitize_racecheck"):
        assert sections[name]["status"].startswith("skipped"), (name, sections[name])
    assert "collected" in report["tests"]["cuda"]["summary"]
    assert report["sanitizer"]["memcheck"]["cases"] > 0 and report["sanitizer"]["memcheck"]["bad_cases"] == 0
    assert report["smoke"]["target"]["srcc"] == report["smoke"]["target"]["srcc"]  # a number, not NaN
    rows = report["train"]["rows"]
    assert rows and all(r["images_per_s"] > 0 and 0 <= r["freq_pool_share"] < 1 for r in rows), rows
    assert report["bench"]["rows"] and report["bench"]["dry_run"] is True
    assert report["out_problems"] == []
    text = (out / "h200.md").read_text()
    assert text.startswith("# freqalign GPU check -- DRY RUN")
    for _, title in gpu_report.SECTIONS:
        assert title in text, title
    log = (out / "gpu_check.log").read_text()
    assert "done in" in log and "----- bench.log" in log


PYTEST_CUT_BY_SIGINT = """\
tests/test_cuda.py::test_dct2d_idct2d[cuda_backend-(7, 7)-torch.float32] PASSED [  1%]
tests/test_cuda.py::test_freq_pool[cuda_backend-(4, 4)-True-torch.bfloat16] FAILED [  2%]
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!! KeyboardInterrupt !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
/usr/lib/python3.12/selectors.py:415: KeyboardInterrupt
(to show a full traceback on KeyboardInterrupt use --full-trace)
============================= slowest 15 durations =============================
12.31s call     tests/test_cuda.py::test_torch_compile_fullgraph[cuda_backend-torch.float32]
0.52s setup    tests/test_cuda.py::test_nan_propagates[cuda_backend-torch.float16]
=========================== short test summary info ============================
FAILED tests/test_cuda.py::test_freq_pool[cuda_backend-(4, 4)-True-torch.bfloat16] - AssertionError: freq_pool
============== 1 failed, 1 passed, 3 skipped in 95.02s (0:01:35) ===============
"""


def test_report_reads_a_pytest_run_cut_by_sigint(tmp_path):
    parsed = gpu_report.parse_pytest(PYTEST_CUT_BY_SIGINT, str(tmp_path / "missing.xml"))
    assert parsed["interrupted"] and parsed["seconds"] == 95.02
    assert (parsed["passed"], parsed["failed"], parsed["errors"], parsed["skipped"]) == (1, 1, 0, 3)
    assert parsed["failures"] == ["FAILED tests/test_cuda.py::test_freq_pool[cuda_backend-(4, 4)-True-torch.bfloat16]"
                                  " - AssertionError: freq_pool"]
    slowest = "tests/test_cuda.py::test_torch_compile_fullgraph[cuda_backend-torch.float32]"
    assert parsed["slowest"][0] == dict(seconds=12.31, when="call", test=slowest)


def test_report_reads_sanitizer_summaries():
    memcheck = gpu_report.parse_sanitizer("========= ERROR SUMMARY: 2 errors\n", dict(cases=10, bad=0, results=[]))
    assert memcheck["errors"] == 2 and memcheck["tool_ran"] and memcheck["cases"] == 10
    race = gpu_report.parse_sanitizer("========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n", None)
    assert race["hazards"] == 0 and race["tool_ran"]
    assert not gpu_report.parse_sanitizer("python3: command not found\n", None)["tool_ran"]


def test_out_rule_catches_violations(tmp_path):
    assert gpu_report.check_out(str(tmp_path)) == []
    for i in range(9):
        (tmp_path / f"f{i}.txt").write_text("x")
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "deep.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    problems = " | ".join(gpu_report.check_out(str(tmp_path)))
    assert "11 files" in problems and "more than 2 folders down" in problems and "bad name.txt" in problems
