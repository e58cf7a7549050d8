"""No import circles: the package's module-level imports form a graph without cycles, the
Triton kernels import nothing from freqalign, and every module imports on its own in a fresh
interpreter, in random orders (issue 17)."""
import ast
import importlib.util
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = {"freqalign": os.path.join(ROOT, "freqalign"), "freqalign.kernels": os.path.join(ROOT, "kernels")}


def _modules() -> dict:
    """Every module of the package (``freqalign.kernels`` is the top-level kernels/), name -> path."""
    found = {}
    for package, folder in PACKAGES.items():
        for parent, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            relative = os.path.relpath(parent, folder)
            prefix = package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}"
            for name in files:
                if name.endswith(".py") and name != "__main__.py":
                    module = prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}"
                    found[module] = os.path.join(parent, name)
    return found


MODULES = _modules()


def _top_level_imports(module: str, path: str):
    """Absolute names of the modules ``module`` imports at module level (not inside functions)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _graph() -> dict:
    return {module: {name for name in _top_level_imports(module, path) if name in MODULES and name != module}
            for module, path in MODULES.items()}


def test_module_imports_have_no_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_kernels_import_nothing_from_freqalign():
    for module, path in MODULES.items():
        if module.startswith("freqalign.kernels"):
            outside = {name for name in _top_level_imports(module, path)
                       if name.startswith("freqalign") and not name.startswith("freqalign.kernels")}
            source = open(path).read()
            assert not outside and "import freqalign" not in source and "from freqalign" not in source, module


@pytest.mark.slow  # three fresh interpreters, about 10 s each: `make test` runs it, `make test-fast` not
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_in_a_fresh_interpreter_in_random_order(seed):
    names = sorted(m for m in MODULES if importlib.util.find_spec("triton") or not m.startswith("freqalign.kernels."))
    random.Random(seed).shuffle(names)
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"order {names}:\n{proc.stderr[-3000:]}"


HEAVY = ("triton", "torch._inductor", "torch._dynamo", "sympy")


def _heavy_modules_after_import(**env) -> list:
    """The HEAVY modules a fresh ``import freqalign`` loads with no GPU visible and ``env`` set."""
    clean = {k: v for k, v in os.environ.items() if k not in ("FREQALIGN_BACKEND", "TRITON_INTERPRET")}
    clean.update(CUDA_VISIBLE_DEVICES="", **env)
    code = f"import freqalign, sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=clean)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_import_is_light_without_a_gpu():
    """No GPU and no request for triton: ``import freqalign`` loads no triton, inductor, dynamo or
    sympy (issue 24: they doubled the import time of every CLI call)."""
    assert _heavy_modules_after_import() == []


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_asking_for_triton_loads_it():
    """FREQALIGN_BACKEND=triton loads the triton backend at import (so a compiled region finds its
    ops registered): the check above does see triton when it is there."""
    assert "triton" in _heavy_modules_after_import(FREQALIGN_BACKEND="triton")
