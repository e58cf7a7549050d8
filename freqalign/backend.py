"""Backend registry and selection (docs/design.md section 2).

A backend is a set of three kernels with one contract, whatever the implementation:

- ``transform2d(x, left, right)``: ``left @ x[p] @ right.T`` for every (H, W) plane ``p`` of
  ``x (..., H, W)``; ``left (H, H)`` and ``right (W, W)`` are in the accumulation dtype
  (float64 for float64 input, else float32); output contiguous, in ``x.dtype``.
- ``pool_forward(x, filters, grouped)``: ``x (B, C, H, W)`` pooled against ``filters (K, H, W)``;
  grouped: channel c uses filter ``c // (C // K)``, output ``(B, C)``; else output ``(B, C, K)``.
- ``pool_backward(grad, filters, grouped)``: the adjoint, ``(B, C, H, W)`` contiguous in
  ``grad.dtype``.

Each backend's kernels are registered ops with the same autograd (one set of adjoint formulas,
``freqalign.ops.autograd``), and none lets autocast change its dtype or precision
(docs/design.md section 2: fp32 in, fp32 out; fp16/bf16 in, the same out, fp32 accumulation).

One table (``register_backend``; the built-in ones in ``freqalign.ops``) holds each backend's
loader, its attention ops (``freqalign.ops.fused_attention``; a backend without them runs the
fallback's) and the device types ``auto`` may pick it for: the selection, the status report,
the ops and the attention op all read it.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

ENV_VAR = "FREQALIGN_BACKEND"
FALLBACK = "torch"  # runs whatever no other backend can


@dataclass(frozen=True)
class Kernels:
    transform2d: Callable
    pool_forward: Callable
    pool_backward: Callable
    devices: tuple  # device types the kernels accept, e.g. ("cpu",) or ("cuda",)


@dataclass(frozen=True)
class Backend:
    """A registered backend: ``load() -> Kernels`` raises (ImportError, RuntimeError) with a
    reason when unavailable; ``attention() -> (forward, backward)`` registers its attention ops
    (None: it runs the fallback's); ``auto``: the device types ``auto`` may pick it for."""
    load: Callable[[], Kernels]
    attention: Optional[Callable[[], Tuple[Callable, Callable]]] = None
    auto: tuple = ()


_registry: Dict[str, Backend] = {}
_loaded: Dict[str, Kernels] = {}
_attention: Dict[str, Tuple[Callable, Callable]] = {}
_failures: Dict[str, str] = {}
_state = threading.local()
_warned = set()


def register_backend(name: str, loader: Callable[[], Kernels], *,
                     attention: Optional[Callable[[], Tuple[Callable, Callable]]] = None,
                     auto: tuple = ()) -> None:
    """Register a backend (see ``Backend``). ``auto`` tries the backends registered last first."""
    _registry[name] = Backend(loader, attention, tuple(auto))


def unregister_backend(name: str) -> None:
    """Forget a registered backend and what loading it left (tests register toy ones)."""
    del _registry[name]
    for table in (_loaded, _attention, _failures):
        table.pop(name, None)
    _warned.discard(name)


def names() -> Tuple[str, ...]:
    """The registered backends' names, in registration order."""
    return tuple(_registry)


def pickable(device_type: str) -> List[str]:
    """The backends ``auto`` tries on ``device_type``, first choice first."""
    return [name for name in reversed(_registry) if device_type in _registry[name].auto]


def load(name: str) -> Optional[Kernels]:
    """The backend's kernels (its attention ops registered too), or None (with the reason kept
    for :func:`backends`)."""
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        return None
    try:
        entry = _registry[name]
        kernels = entry.load()
        if entry.attention is not None:
            _attention[name] = entry.attention()
    except Exception as exc:  # noqa: BLE001 - any failure makes the backend unavailable, with its reason
        _failures[name] = f"{type(exc).__name__}: {exc}"
        return None
    _loaded[name] = kernels
    return kernels


def attention(kernels: Kernels) -> Tuple[Callable, Callable]:
    """The (forward, backward) attention ops of the backend whose kernels these are; the
    fallback's when it registered none."""
    name = name_of(kernels)
    if name not in _attention:
        load(FALLBACK)
        name = FALLBACK
    return _attention[name]


def name_of(kernels: Kernels) -> str:
    """The name of a loaded backend's kernels (as :func:`select` returns them)."""
    return next(name for name, loaded in _loaded.items() if loaded is kernels)


def backends() -> Dict[str, str]:
    """Each backend's status: ``"available"`` or why not (not built, no GPU, import error)."""
    report = {}
    for name in _registry:
        kernels = load(name)
        if kernels is None:
            report[name] = f"unavailable ({_failures.get(name, 'not registered')})"
        elif "cpu" not in kernels.devices and not torch.cuda.is_available():
            report[name] = "built, but no CUDA GPU is visible"
        else:
            report[name] = "available"
    return report


def _requested() -> str:
    name = getattr(_state, "override", None) or os.environ.get(ENV_VAR, "auto") or "auto"
    if name != "auto" and name not in _registry:
        raise ValueError(f"unknown backend {name!r} (from {ENV_VAR} or use_backend); "
                         f"choose one of {('auto',) + names()}")
    return name


@contextlib.contextmanager
def use_backend(name: str):
    """Run the enclosed ops on backend ``name`` (``auto``, or a registered one: ``torch``,
    ``cpu``, ``cuda``, ``triton``).

    A named backend loads on entry, so a compiled region inside finds its ops registered.
    """
    if name != "auto" and name not in _registry:
        raise ValueError(f"unknown backend {name!r}; choose one of {('auto',) + names()}")
    if name != "auto":
        load(name)
    previous = getattr(_state, "override", None)
    _state.override = name
    try:
        yield
    finally:
        _state.override = previous


def warn_fallback(name: str, reason: str) -> None:
    """One warning per backend: it is unavailable, and its calls run on the torch backend."""
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"freqalign: backend {name!r} is unavailable ({reason}); "
                      f"falling back to the pure-PyTorch backend", RuntimeWarning, stacklevel=3)


def capturing() -> bool:
    """True while ``torch.jit`` traces or scripts, or ``torch.export`` captures (``torch.onnx`` runs
    under one of them): the ops and layers then run their plain formulation in standard torch ops
    (docs/design.md section 2, "Exporting"). False in eager and under ``torch.compile``."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_exporting()


def select(device: torch.device) -> Kernels:
    """The kernels to run on ``device``: the requested backend, or ``auto``'s choice."""
    name = _requested()
    if name == "auto":
        order = pickable(device.type) or [FALLBACK]
        for candidate in order:
            kernels = load(candidate)
            if kernels is not None and device.type in kernels.devices:
                return kernels
        warn_fallback(order[0], _failures.get(order[0], "not built for this device"))
        return load(FALLBACK)
    kernels = load(name)
    if kernels is None:
        warn_fallback(name, _failures.get(name, "not registered"))
        return load(FALLBACK)
    if device.type not in kernels.devices:
        raise ValueError(f"backend {name!r} runs on {'/'.join(kernels.devices)} tensors, "
                         f"got a tensor on {device}")
    return kernels


def __getattr__(name: str):
    if name == "BACKEND_NAMES":  # the registered names were a constant tuple
        warnings.warn("freqalign.backend.BACKEND_NAMES is deprecated, use "
                      "freqalign.backend.names()", DeprecationWarning, stacklevel=2)
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
