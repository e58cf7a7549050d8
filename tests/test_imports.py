"""No import circles: the package's imports (module level and inside functions) form a graph
without cycles, between modules and between packages (issue 25: a lazy import hid a cycle
between train/ and scoring); the Triton kernels import nothing from freqalign; and every module
imports on its own in a fresh interpreter, in random orders (issue 17)."""
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


def _imports(module: str, path: str):
    """Absolute names of the modules ``module`` imports, at module level or inside functions."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(open(path).read())):
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
    return {module: {name for name in _imports(module, path) if name in MODULES and name != module}
            for module, path in MODULES.items()}


def _package(module: str) -> str:
    """The folder a module lives in (``freqalign.train``, ``freqalign.kernels``, ...); a module
    at the package's top level (``freqalign.scoring``) stands for itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or module in PACKAGE_NAMES else module


PACKAGE_NAMES = {m for m, p in MODULES.items() if p.endswith("__init__.py")} - {"freqalign"}


def _package_graph() -> dict:
    graph = {}
    for module, targets in _graph().items():
        graph.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module))
    return graph


def _cycles(graph: dict) -> list:
    state, cycles = {}, []

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
    return cycles


def test_module_imports_have_no_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_package_imports_have_no_cycle():
    """Folders import one another one way only (freqalign/run below train/ and scoring)."""
    cycles = _cycles(_package_graph())
    assert not cycles, "import circles between packages:\n" + "\n".join(cycles)


def test_function_level_imports_are_seen():
    """The graph reads imports inside functions: the check above cannot pass by hiding one."""
    assert "freqalign.scoring" in _graph()["freqalign"]  # __getattr__'s lazy import


def test_kernels_import_nothing_from_freqalign():
    for module, path in MODULES.items():
        if module.startswith("freqalign.kernels"):
            outside = {name for name in _imports(module, path)
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
