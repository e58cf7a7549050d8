"""Driver for ``compute-sanitizer`` (memcheck, racecheck) on one backend's kernels (issue #11).

Runs every kernel of the backend (``dct2d``/``idct2d``, ``freq_pool`` grouped and ungrouped, and
the fused attention ``ms_attention``, forward and backward) once per case at small, odd shapes that reach the edge paths: 7x7 and
3x5 maps, 13 channels (no vector width divides it), channels_last, a misaligned start, the
4-lanes-per-row pooling path (4x4, 8x8), the split reduction (few channels, 56x56), float64 at
64x64 (the transform's large dynamic shared memory). Each output is compared with the
``torch`` backend in float64, loosely (the dtype's rounding, times a margin): the point is
that the sanitizer watches every access, and that nothing returns garbage.

    compute-sanitizer --tool memcheck python3 -m benchmarks.gpu.gpu_sanitize --backend cuda --out m.json
    python -m benchmarks.gpu.gpu_sanitize --dry-run --out d.json     # CPU, the cpu backend: checks the driver

Run it with ``PYTORCH_NO_CUDA_MEMORY_CACHING=1`` (gpu_check.sh does) so that every tensor is its
own allocation and memcheck sees accesses past its end. Exit status 1 when an output is wrong.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import torch

import freqalign

TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 4e-3, torch.bfloat16: 3e-2}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp64": torch.float64}


def make(shape, dtype, device, layout, seed):
    """A seeded input of ``shape`` in ``layout``: contiguous, channels_last or misaligned."""
    gen = torch.Generator().manual_seed(seed)
    numel = torch.Size(shape).numel()
    flat = torch.randn(numel + 1, generator=gen, dtype=torch.float64).to(dtype).to(device)
    if layout == "misaligned":
        return flat[1:].view(shape)
    x = flat[:numel].view(shape)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def cases(dry: bool):
    """(name, op, shape, dtype, layout, K or None, grouped) of every case."""
    dct = [((2, 13, 7, 7), "fp32", "contiguous"), ((2, 13, 3, 5), "fp32", "channels_last"),
           ((2, 13, 7, 7), "bf16", "channels_last"), ((2, 13, 3, 5), "fp16", "misaligned"),
           ((1, 3, 14, 13), "fp32", "contiguous"), ((2, 13, 7, 7), "fp64", "contiguous")]
    dct.append(((1, 2, 64, 64), "fp64", "contiguous") if not dry else ((1, 2, 9, 9), "fp64", "contiguous"))
    out = []
    for shape, dtype, layout in dct:
        for op in ("dct2d", "idct2d"):
            out.append((f"{op} {tuple(shape)} {dtype} {layout}", op, shape, dtype, layout, None, None))
    pool = [((2, 13, 7, 7), "fp32", "contiguous", 1), ((2, 13, 7, 7), "fp32", "channels_last", 13),
            ((2, 13, 3, 5), "bf16", "contiguous", 13), ((2, 13, 3, 5), "fp16", "channels_last", 1),
            ((2, 13, 7, 7), "fp64", "misaligned", 13), ((2, 16, 4, 4), "fp32", "contiguous", 4),
            ((2, 16, 8, 8), "bf16", "contiguous", 4), ((2, 16, 4, 4), "fp64", "contiguous", 2),
            ((2, 16, 7, 7), "fp32", "channels_last", 4), ((2, 16, 7, 7), "bf16", "misaligned", 8),
            ((1, 2, 56, 56) if not dry else (1, 2, 12, 12), "fp32", "contiguous", 2),
            ((1, 2, 56, 56) if not dry else (1, 2, 12, 12), "bf16", "channels_last", 2)]
    for shape, dtype, layout, k in pool:
        for grouped in (True, False):
            out.append((f"freq_pool {tuple(shape)} {dtype} {layout} K={k} grouped={grouped}", "freq_pool", shape,
                        dtype, layout, k, grouped))
    attention = [((2, 16, 7, 7), "fp32", "contiguous", 4), ((2, 16, 7, 7), "bf16", "channels_last", 4),
                 ((2, 13, 3, 5), "fp16", "misaligned", 1), ((2, 16, 5, 5), "fp64", "channels_last", 2),
                 ((1, 32, 56, 56) if not dry else (1, 32, 12, 12), "fp32", "channels_last", 16)]
    for shape, dtype, layout, k in attention:
        out.append((f"ms_attention {tuple(shape)} {dtype} {layout} K={k}", "ms_attention", shape, dtype, layout, k,
                    True))
    return out


def attention_fn(channels, freqs, seed):
    """``ms_attention`` at ``freqs`` with seeded FC weights (hidden 4) cast to the input's place."""
    gen = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(4, channels, generator=gen), torch.randn(channels, 4, generator=gen)
    return lambda t: freqalign.ops.ms_attention(t, freqs, w1.to(t.device), w2.to(t.device))


def frequencies(height, width, k):
    picks = torch.randperm(height * width, generator=torch.Generator().manual_seed(k))[:k]
    return [(int(i) // width, int(i) % width) for i in picks]


def run_case(op, shape, dtype, layout, k, grouped, backend, device, seed):
    """Forward and backward of one case on ``backend``: (max relative error, its tolerance)."""
    x = make(shape, DTYPES[dtype], device, layout, seed).requires_grad_(True)
    if op == "freq_pool":
        freqs = frequencies(shape[-2], shape[-1], k)
        fn = lambda t: freqalign.freq_pool(t, freqs, grouped=grouped)  # noqa: E731
    elif op == "ms_attention":
        fn = attention_fn(shape[1], frequencies(shape[-2], shape[-1], k), seed)
    else:
        fn = getattr(freqalign, op)
    with freqalign.use_backend(backend):
        out = fn(x)
        g = make(tuple(out.shape), DTYPES[dtype], device, "contiguous", seed + 1)
        (grad,) = torch.autograd.grad(out, x, g)
    if device == "cuda":
        torch.cuda.synchronize()
    x64 = x.detach().double().cpu().requires_grad_(True)
    with freqalign.use_backend("torch"):
        ref = fn(x64)
        (ref_grad,) = torch.autograd.grad(ref, x64, g.double().cpu())
    errors = []
    for got, want in ((out, ref), (grad, ref_grad)):
        assert got.dtype == DTYPES[dtype] and got.shape == want.shape, (got.dtype, got.shape, want.shape)
        scale = want.abs().max().item() or 1.0
        errors.append((got.detach().double().cpu() - want.detach()).abs().max().item() / scale)
    return max(errors), TOLERANCE[DTYPES[dtype]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cuda", help="backend to check (default cuda)")
    parser.add_argument("--out", default="", help="JSON file for the per-case results")
    parser.add_argument("--dry-run", action="store_true", help="CPU, cpu backend (or torch), tiny shapes")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else "cuda"
    backend = args.backend
    if args.dry_run and backend in ("cuda", "triton"):
        backend = "cpu" if freqalign.backends()["cpu"] == "available" else "torch"
    status = freqalign.backends()[backend]
    started = time.monotonic()
    results, bad = [], 0
    if status != "available":
        print(f"backend {backend}: {status}", flush=True)
        bad = 1
    else:
        for i, (name, op, shape, dtype, layout, k, grouped) in enumerate(cases(args.dry_run)):
            row = dict(case=name)
            try:
                err, tol = run_case(op, shape, dtype, layout, k, grouped, backend, device, seed=100 + i)
                row.update(rel_err=err, tolerance=tol, ok=bool(err <= tol))
            except Exception as exc:  # noqa: BLE001 - recorded, the next case still runs
                row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:400])
                traceback.print_exc()
            bad += not row["ok"]
            print(f"{'ok ' if row['ok'] else 'BAD'} {name}: " +
                  (f"rel err {row['rel_err']:.1e} (tolerance {row['tolerance']:.0e})" if "rel_err" in row
                   else row.get("error", "")), flush=True)
            results.append(row)
    summary = dict(backend=backend, status=status, device=device, cases=len(results), bad=bad,
                   seconds=round(time.monotonic() - started, 1), results=results,
                   caching_allocator_off=os.environ.get("PYTORCH_NO_CUDA_MEMORY_CACHING") == "1")
    print(f"{len(results) - bad}/{len(results)} cases ok on {backend} ({summary['seconds']} s)", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
