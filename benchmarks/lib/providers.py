"""The competing implementations timed by the CPU benchmarks (issue #2 items 6-7).

Each benchmarked op has providers: freqalign's backends, the strongest plain-PyTorch
formulations, ``torch.compile``, external libraries and memory floors. A provider's ``build``
does all set-up (filter buffers, compilation, the forward pass of a backward benchmark)
outside the timed region and returns a zero-argument callable that runs the op once; it
raises :class:`Unavailable` with a reason when it cannot run here (e.g. the C++ extension is
not built). Shared by ``kernels/test_bench_cpu.py`` (pytest-benchmark) and
``kernels/report_cpu.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import scipy.fft
import torch

import freqalign
from freqalign.basis import dct_matrix, pool_filters

from .fcanet_reference import from_attention  # FcaNet's formulation, as the tests state it

SHAPES: Tuple[Tuple[int, int, int, int], ...] = (
    (32, 2048, 7, 7), (32, 2048, 14, 14), (16, 1024, 32, 32), (8, 256, 56, 56))
K = 16  # frequencies: zigzag window 0..15 of the 7x7 grid, mapped to the feature size
SCIPY_WORKERS = os.cpu_count()  # all cores, as issue #2 asks; report_cpu.py --threads N sets N


class Unavailable(Exception):
    """A provider cannot run on this machine; the message says why."""


@dataclass
class Case:
    """The inputs of one benchmark: ``x (B, C, H, W)`` fp32, K frequencies and their filters."""
    shape: Tuple[int, int, int, int]
    x: torch.Tensor
    freqs: Tuple[Tuple[int, int], ...]
    filters: torch.Tensor  # (K, H, W) fp32, orthonormal DCT basis images
    grad: torch.Tensor  # (B, C) upstream gradient for the grouped backward


def make_case(shape, seed: int = 0) -> Case:
    batch, channels, height, width = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    freqs = freqalign.grid_to_index(freqalign.window(0, K), height, width)
    filters = pool_filters(freqs, height, width, "ortho", torch.float32)
    grad = torch.randn(batch, channels, generator=gen)
    return Case(tuple(shape), x, freqs, filters, grad)


@dataclass(frozen=True)
class Provider:
    name: str  # short id, used in test ids and JSON
    label: str  # human-readable, used in tables
    kind: str  # "freqalign" | "plain" (eager PyTorch) | "compiled" | "external" | "floor"
    build: Callable[[Case], Callable[[], object]]


@dataclass(frozen=True)
class Op:
    name: str
    title: str
    floor: str  # provider name of the memory floor the ratios are taken against
    providers: Tuple[Provider, ...]
    reference: Callable[[Case], torch.Tensor]  # float64 ground truth, for the correctness check


# --- freqalign -----------------------------------------------------------------------------

def require_backend(name: str) -> None:
    """Raise Unavailable unless freqalign's backend ``name`` runs here (no silent fallback)."""
    status = freqalign.backends().get(name, "not registered")
    if status != "available":
        raise Unavailable(f"freqalign backend {name!r}: {status}")


def _on_backend(name: str, fn: Callable[[], object]) -> Callable[[], object]:
    require_backend(name)

    def run():
        with freqalign.use_backend(name):
            return fn()
    return run


def _fa_pool(name: str, grouped: bool):
    return lambda c: _on_backend(name, lambda: freqalign.freq_pool(c.x, c.freqs, grouped=grouped))


def _fa_pool_backward(name: str):
    def build(c: Case):
        require_backend(name)
        x = c.x.detach().requires_grad_()
        with freqalign.use_backend(name):
            y = freqalign.freq_pool(x, c.freqs, grouped=True)
        return lambda: torch.autograd.grad(y, x, c.grad, retain_graph=True)[0]
    return build


def _fa_dct(name: str):
    return lambda c: _on_backend(name, lambda: freqalign.dct2d(c.x))


# --- plain PyTorch formulations of grouped pooling ------------------------------------------

def _channel_filters(c: Case) -> torch.Tensor:
    """FcaNet's (C, H, W) filter buffer: filter k repeated for its C/K channels."""
    return c.filters.repeat_interleave(c.shape[1] // K, dim=0).contiguous()


def _pool_bmm(x, filters):
    b, ch, h, w = x.shape
    k = filters.shape[0]
    return (x.view(b, k, ch // k, h * w) @ filters.view(k, h * w, 1)).view(b, ch)


def _pool_mul_sum(x, channel_filters):
    return (x * channel_filters).sum((2, 3))


def _pool_allk_gather(x, filters, index):
    b, ch, h, w = x.shape
    k = filters.shape[0]
    every = x.view(b, ch, h * w) @ filters.view(k, h * w).t()  # (B, C, K)
    return every.gather(2, index.expand(b, ch, 1)).squeeze(2)


def _build_bmm(c):
    return lambda: _pool_bmm(c.x, c.filters)


def _build_mul_sum(c):
    filt = _channel_filters(c)
    return lambda: _pool_mul_sum(c.x, filt)


def _build_allk_gather(c):
    index = (torch.arange(c.shape[1]) // (c.shape[1] // K)).view(1, -1, 1)
    return lambda: _pool_allk_gather(c.x, c.filters, index)


def _compiled(fn: Callable, *args) -> Callable[[], object]:
    """``torch.compile(fn)`` called on ``args``, compiled once outside the timed region."""
    try:
        compiled = torch.compile(fn, dynamic=False, fullgraph=True)
        compiled(*args)
    except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
        raise Unavailable(f"torch.compile failed: {type(exc).__name__}: {exc}") from exc
    return lambda: compiled(*args)


def _build_compiled_mul_sum(c):
    return _compiled(_pool_mul_sum, c.x, _channel_filters(c))


def _autograd(formulation: Callable[[Case], Callable[[torch.Tensor], torch.Tensor]]):
    """Backward of a plain formulation: forward once at build time, time autograd.grad."""
    def build(c: Case):
        x = c.x.detach().requires_grad_()
        y = formulation(c)(x)
        return lambda: torch.autograd.grad(y, x, c.grad, retain_graph=True)[0]
    return build


def _bmm_of(c):
    return lambda x: _pool_bmm(x, c.filters)


def _mul_sum_of(c):
    filt = _channel_filters(c)
    return lambda x: _pool_mul_sum(x, filt)


def _pool_ungrouped_matmul(x, bank_t):
    b, ch, h, w = x.shape
    return (x.view(b * ch, h * w) @ bank_t).view(b, ch, -1)


def _build_ungrouped_matmul(c):
    bank_t = c.filters.view(K, -1).t()
    return lambda: _pool_ungrouped_matmul(c.x, bank_t)


def _build_compiled_ungrouped_matmul(c):
    return _compiled(_pool_ungrouped_matmul, c.x, c.filters.view(K, -1).t())


# --- DCT --------------------------------------------------------------------------------------

def _build_torch_dct(c):
    try:
        import torch_dct
    except ImportError as exc:
        raise Unavailable("torch-dct is not installed (pip install torch-dct)") from exc
    return lambda: torch_dct.dct_2d(c.x, norm="ortho")


def _dct_matmul(x, rows, cols):
    return rows @ x @ cols.t()


def _build_compiled_dct_matmul(c):
    return _compiled(_dct_matmul, c.x, dct_matrix(c.shape[2], torch.float32), dct_matrix(c.shape[3], torch.float32))


def _build_scipy_dctn(c):
    workers = SCIPY_WORKERS
    return lambda: scipy.fft.dctn(c.x.numpy(), type=2, norm="ortho", axes=(-2, -1), workers=workers)


# --- FcaNet attention (forward + backward) ---------------------------------------------------

def _attention(c: Case):
    """freqalign's layer at the case's shape (FcaNet's top-16 frequencies, reduction 16), the
    upstream gradient of its output, and FcaNet's formulation of it with the same weights."""
    from freqalign.nn import MultiSpectralAttention

    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    layer = MultiSpectralAttention(c.shape[1], reduction=16, freqs="top16")
    grad = torch.randn(c.shape, generator=gen)
    indices = freqalign.grid_to_index(layer.pool.freqs, c.shape[2], c.shape[3], layer.pool.grid)
    return layer, grad, from_attention(layer, c.shape[2], c.shape[3], indices=indices)


def _step(module, x, grad):
    """One forward + backward: the gradients of x and of the FC weights; returns grad x."""
    leaf = x.detach().requires_grad_()
    weights = [p for p in module.parameters() if p.requires_grad]
    return lambda: torch.autograd.grad(module(leaf), [leaf] + weights, grad)[0]


def _fa_attention(name: str):
    def build(c: Case):
        layer, grad, _ = _attention(c)
        step = _step(layer, c.x, grad)
        return _on_backend(name, step)
    return build


def _build_compiled_fcanet(c):
    layer, grad, fcanet = _attention(c)
    try:
        compiled = torch.compile(fcanet, fullgraph=True)
        step = _step(compiled, c.x, grad)
        step()
    except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler for inductor
        raise Unavailable(f"torch.compile failed: {type(exc).__name__}: {exc}") from exc
    return step


def _ref_attention(c):
    _, grad, fcanet = _attention(c)
    x = c.x.double().requires_grad_()
    return torch.autograd.grad(fcanet.double()(x), x, grad.double())[0]


# --- floors -----------------------------------------------------------------------------------

def _build_sum(c):
    return lambda: c.x.sum()


def _build_clone(c):
    return lambda: c.x.clone()


FLOOR_SUM = Provider("floor_sum", "x.sum() (read once)", "floor", _build_sum)
FLOOR_CLONE = Provider("floor_clone", "x.clone() (read+write)", "floor", _build_clone)


# --- float64 references -----------------------------------------------------------------------

def _ref_grouped(c):
    return _pool_bmm(c.x.double(), c.filters.double())


def _ref_grouped_backward(c):
    b, ch, h, w = c.shape
    per_channel = _channel_filters(c).double()
    return c.grad.double().view(b, ch, 1, 1) * per_channel


def _ref_ungrouped(c):
    b, ch, h, w = c.shape
    return (c.x.double().view(b * ch, h * w) @ c.filters.double().view(K, h * w).t()).view(b, ch, K)


def _ref_dct(c):
    return torch.from_numpy(scipy.fft.dctn(c.x.double().numpy(), type=2, norm="ortho", axes=(-2, -1)))


OPS: Dict[str, Op] = {op.name: op for op in (
    Op("pool_fwd_grouped", "freq_pool forward, grouped, K=16", "floor_sum", (
        Provider("fa_cpu", "freqalign cpu", "freqalign", _fa_pool("cpu", True)),
        Provider("fa_torch", "freqalign torch backend", "freqalign", _fa_pool("torch", True)),
        Provider("bmm", "x.view(B,K,C/K,HW) @ F.view(K,HW,1)", "plain", _build_bmm),
        Provider("mul_sum", "FcaNet (x * filt[C,H,W]).sum((2,3))", "plain", _build_mul_sum),
        Provider("allk_gather", "all-K matmul + gather", "plain", _build_allk_gather),
        Provider("compile_mul_sum", "torch.compile(mul+sum)", "compiled", _build_compiled_mul_sum),
        FLOOR_SUM, FLOOR_CLONE), _ref_grouped),
    Op("pool_bwd_grouped", "freq_pool backward (grad wrt x), grouped, K=16", "floor_clone", (
        Provider("fa_cpu", "freqalign cpu", "freqalign", _fa_pool_backward("cpu")),
        Provider("fa_torch", "freqalign torch backend", "freqalign", _fa_pool_backward("torch")),
        Provider("bmm", "autograd of batched matmul", "plain", _autograd(_bmm_of)),
        Provider("mul_sum", "autograd of FcaNet mul+sum", "plain", _autograd(_mul_sum_of)),
        FLOOR_CLONE), _ref_grouped_backward),
    Op("pool_fwd_ungrouped", "freq_pool forward, ungrouped, K=16", "floor_sum", (
        Provider("fa_cpu", "freqalign cpu", "freqalign", _fa_pool("cpu", False)),
        Provider("fa_torch", "freqalign torch backend", "freqalign", _fa_pool("torch", False)),
        Provider("matmul", "x.view(B*C,HW) @ F.T", "plain", _build_ungrouped_matmul),
        Provider("compile_matmul", "torch.compile(matmul)", "compiled", _build_compiled_ungrouped_matmul),
        FLOOR_SUM), _ref_ungrouped),
    Op("dct2d_fwd", "dct2d forward", "floor_clone", (
        Provider("fa_cpu", "freqalign cpu", "freqalign", _fa_dct("cpu")),
        Provider("fa_torch", "freqalign torch (separable matmul)", "freqalign", _fa_dct("torch")),
        Provider("torch_dct", "torch-dct dct_2d (PyPI)", "external", _build_torch_dct),
        Provider("scipy", "scipy.fft.dctn (workers: see header)", "external", _build_scipy_dctn),
        Provider("compile_matmul", "torch.compile(C_H @ x @ C_W.T)", "compiled", _build_compiled_dct_matmul),
        FLOOR_CLONE), _ref_dct),
    Op("attention", "FcaNet attention (top16, reduction 16), forward + backward", "floor_clone", (
        Provider("fa_cpu", "freqalign cpu (fused ms_attention)", "freqalign", _fa_attention("cpu")),
        Provider("fa_torch", "freqalign torch backend", "freqalign", _fa_attention("torch")),
        Provider("compile_fcanet", "torch.compile(FcaNet's layer)", "compiled", _build_compiled_fcanet),
        FLOOR_CLONE), _ref_attention),
)}


def max_relative_error(out, reference: torch.Tensor) -> float:
    """max |out - ref| / max |ref|: a provider's numerical agreement with the float64 reference."""
    out = torch.from_numpy(out) if not isinstance(out, torch.Tensor) else out
    out = out.detach().double().reshape(reference.shape)
    return float((out - reference).abs().max() / reference.abs().max().clamp_min(1e-30))
