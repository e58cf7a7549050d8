"""Running Triton kernel tests under the interpreter (``TRITON_INTERPRET=1``) on the CPU.

The flag only takes effect if it is set before triton is first imported, and it must not leak
into other test modules (on a GPU machine they run the compiled kernels). So a test file
collects one ordinary test that reruns the file in a fresh ``python -m pytest`` subprocess
with the flag set (``run_interpreter_tests``); its kernel tests carry ``interpreted`` and run
only inside that subprocess.
"""
import os
import subprocess
import sys

import pytest

IN_INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
interpreted = pytest.mark.skipif(not IN_INTERPRETER,
                                 reason="runs in the TRITON_INTERPRET=1 subprocess of test_interpreter_run")


def run_interpreter_tests(test_file: str, select: str) -> None:
    """Run the tests of ``test_file`` that ``-k select`` picks in a ``TRITON_INTERPRET=1``
    subprocess; every one must pass and none may skip (they have no reason to but a broken
    setup)."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", os.path.abspath(test_file), "-q", "-x", "-rs",
                           "-p", "no:cacheprovider", "-k", select],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"interpreter run failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, proc.stdout[-3000:]
