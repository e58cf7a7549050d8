"""GPU benchmark of freqalign's kernels against cuBLAS and FcaNet-style PyTorch (issue #3).

Times each kernel op (``freq_pool`` grouped forward and backward with K=16, ``dct2d``) for the
providers ``triton``, ``cuda`` (freqalign's backends), ``torch`` (the plain-PyTorch backend:
cuBLAS batched matmul / separable matmuls) and ``fcanet`` (FcaNet's formulation: multiply by a
(C, H, W) filter buffer and sum; for the DCT, every basis image as a filter, i.e. one
(H*W, H*W) matmul), in fp32 and bf16, on the CPU suite's shapes plus inputs of >= 1 GiB. The
kernels are called directly (``freqalign.backend.load(name)``), so the times exclude the
Python argument checks of the public ops. Times are ``triton.testing.do_bench`` medians; the
floor is the device-to-device copy bandwidth (``dst.copy_(src)``, read + write) measured on a
2 GiB buffer. Every output is checked against a float64 reference (max |err| / max |ref|).

Order (issue #11: what matters first, in case the time budget runs out): bf16 then fp32 at the
key shapes (ResNet-50's stages at the paper's batch of 2 x 32: 256 channels at 56x56, 512 at
28x28, 1024 at 14x14, 2048 at 7x7), then the CPU suite's shapes, then the >= 1 GiB inputs.
Writes ``bench.json`` (every measurement, saved again after each shape, so an interrupted run
keeps what it measured; SIGINT stops it cleanly) and ``bench.md`` (tables, the targets of
issue #3 with PASS/MISS) to ``--out``; ``benchmarks/gpu/gpu_check.sh`` folds both into its
``h200.md`` / ``h200.json``. ``--dry-run`` runs the same pipeline on the CPU with tiny shapes
and a wall-clock timer, to check the script itself without a GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch

try:
    from tqdm import tqdm
except ImportError:  # the device machine has no package registry: plain iteration then
    def tqdm(iterable, **_):
        return iterable

import freqalign
from freqalign import backend
from freqalign.basis import dct_matrix, pool_filters
from freqalign.ops import torch_ref

KEY = ((64, 2048, 7, 7), (64, 1024, 14, 14), (64, 512, 28, 28), (64, 256, 56, 56))  # ResNet-50, batch 2 x 32
SUITE = ((32, 2048, 7, 7), (32, 2048, 14, 14), (16, 1024, 32, 32), (8, 256, 56, 56))  # the CPU report's
LARGE_SPATIAL = ((7, 7), (14, 14), (32, 32))  # C = 2048, B chosen so that x is >= 1 GiB
DRY_SUITE = ((2, 32, 7, 7), (2, 16, 14, 14))
K = 16
GIB = 1 << 30
PROVIDERS = ("triton", "cuda", "torch", "fcanet")
OPS = {"pool_fwd": "freq_pool forward (grouped, K=16)", "pool_bwd": "freq_pool backward (grouped, K=16)",
       "dct2d": "dct2d forward"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
# issue #3 targets
POOL_BW_TARGET, DCT_BW_TARGET, BIG_INPUT = 0.80, 0.70, 256 << 20
VS_TORCH_TARGET, VS_FCANET_TARGET, BF16_ERR_TARGET = 1.0, 3.0, 1e-2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory for bench.md and bench.json")
    parser.add_argument("--budget-s", type=float, default=150.0,
                        help="stop starting new measurements after this many seconds (default 150)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated subset of fp32,bf16")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {','.join(OPS)}")
    parser.add_argument("--no-large", action="store_true", help="skip the >= 1 GiB inputs")
    parser.add_argument("--rep-ms", type=float, default=40.0, help="do_bench measuring time per case (default 40)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run on the CPU with tiny shapes and a wall-clock timer (checks the script)")
    args = parser.parse_args(argv)
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    for d in args.dtypes:
        if d not in DTYPES:
            parser.error(f"--dtypes: unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
    for o in args.ops:
        if o not in OPS:
            parser.error(f"--ops: unknown op {o!r}; choose from {', '.join(OPS)}")
    if args.budget_s <= 0 or args.rep_ms <= 0:
        parser.error("--budget-s and --rep-ms must be positive")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible; use --dry-run to check the script on the CPU")
    return args


def plan_cases(dtypes, large: bool, dry: bool):
    """``(dtype name, shape, tag)`` in measuring order: bf16 before fp32 at the key shapes, then the
    CPU suite's shapes, then (B, 2048, H, W) with B chosen so that x holds >= 1 GiB (``large``)."""
    order = sorted(dtypes, key=lambda d: d != "bf16")
    if dry:
        return [(d, s, "dry") for s in DRY_SUITE for d in order]
    cases, seen = [], set()
    groups = [("key", KEY), ("suite", SUITE)]
    for tag, shapes in groups:
        for d in order:
            for shape in shapes:
                if (d, shape) not in seen:
                    seen.add((d, shape))
                    cases.append((d, shape, tag))
    if large:
        for d in order:
            size = torch.finfo(DTYPES[d]).bits // 8
            for h, w in LARGE_SPATIAL:
                cases.append((d, (math.ceil(GIB / (2048 * h * w * size)), 2048, h, w), "large"))
    return cases


def make_timer(device: str, rep_ms: float):
    if device == "cuda":
        from triton.testing import do_bench

        return lambda fn: float(do_bench(fn, warmup=max(5.0, rep_ms / 4), rep=rep_ms, return_mode="median"))

    def wall_clock(fn, repeats=5):
        fn()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return statistics.median(samples)
    return wall_clock


def copy_bandwidth(timer, device: str, dry: bool):
    """(bytes/s, buffer bytes): device-to-device copy bandwidth (read + write) of a 2 GiB buffer (4 MiB dry)."""
    numel = (4 << 20 if dry else 2 * GIB) // 4
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * numel * 4 / (ms * 1e-3), numel * 4


class Case:
    """Inputs of one (shape, dtype): x, its upstream gradient, filters and DCT matrices."""

    def __init__(self, shape, dtype, device, seed=0):
        batch, channels, height, width = shape
        gen = torch.Generator(device=device).manual_seed(seed)
        self.shape, self.dtype = tuple(shape), dtype
        self.x = torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)
        self.grad = torch.randn(batch, channels, generator=gen, device=device, dtype=torch.float32).to(dtype)
        freqs = freqalign.grid_to_index(freqalign.window(0, K), height, width)
        self.filters = pool_filters(freqs, height, width, "ortho", torch.float32, device)
        self.channel_filters = self.filters.repeat_interleave(channels // K, dim=0).to(dtype).contiguous()
        self.rows, self.cols = dct_matrix(height, torch.float32, device), dct_matrix(width, torch.float32, device)
        self.basis = torch.kron(self.rows, self.cols).t().contiguous().to(dtype)  # (H*W, H*W), FcaNet-style bank

    @property
    def nbytes(self) -> int:
        return self.x.numel() * self.x.element_size()

    def reference(self, op: str) -> torch.Tensor:
        f64 = self.filters.double()
        if op == "pool_fwd":
            return torch_ref.pool_forward(self.x.double(), f64, True)
        if op == "pool_bwd":
            return torch_ref.pool_backward(self.grad.double(), f64, True)
        return torch_ref.transform2d(self.x.double(), self.rows.double(), self.cols.double())


def build(op: str, provider: str, case: Case):
    """A zero-argument callable running ``op`` once with ``provider``; raises RuntimeError if unavailable."""
    x, grad, filters = case.x, case.grad, case.filters
    if provider == "fcanet":
        if op == "pool_fwd":
            return lambda: (x * case.channel_filters).sum((2, 3))
        if op == "pool_bwd":  # autograd of (x * filters).sum((2, 3)) with respect to x
            return lambda: grad[:, :, None, None] * case.channel_filters
        b, c, h, w = case.shape
        return lambda: (x.reshape(b * c, h * w) @ case.basis).reshape(b, c, h, w)
    if provider == "torch":  # the plain formulations themselves, without the registered op's dispatch
        kernels = torch_ref
    else:
        kernels = backend.load(provider)
        if kernels is None or x.device.type not in kernels.devices:
            raise RuntimeError(f"backend {provider}: {freqalign.backends()[provider]}")
    if op == "pool_fwd":
        return lambda: kernels.pool_forward(x, filters, True)
    if op == "pool_bwd":
        return lambda: kernels.pool_backward(grad, filters, True)
    return lambda: kernels.transform2d(x, case.rows, case.cols)


def moved_bytes(op: str, case: Case) -> int:
    """The bytes an ideal kernel moves: read x (pool_fwd), write x-sized output (pool_bwd), both (dct2d)."""
    return 2 * case.nbytes if op == "dct2d" else case.nbytes


def run(args, save=None) -> dict:
    """Measure every case of ``plan_cases`` (until ``--budget-s``); ``save(result)`` after each
    shape. A KeyboardInterrupt (SIGINT from gpu_check.sh's timeout) ends the run with what it has."""
    device = "cpu" if args.dry_run else "cuda"
    timer = make_timer(device, args.rep_ms)
    started = time.monotonic()
    copy_bps, copy_bytes = copy_bandwidth(timer, device, args.dry_run)
    rows = []
    result = dict(device=device_name(device), copy_gbps=copy_bps / 1e9, copy_buffer_bytes=copy_bytes, rows=rows,
                  skipped_for_budget=0, interrupted=False, backends=freqalign.backends(), seconds=0.0,
                  versions=versions(), dry_run=args.dry_run,
                  command=" ".join(["python -m benchmarks.gpu.gpu_bench", *sys.argv[1:]]))
    cases = plan_cases(args.dtypes, not args.no_large, args.dry_run)
    try:
        bar = tqdm(cases, desc="gpu_bench", file=sys.stdout, disable=not sys.stdout.isatty())
        for index, (dtype_name, shape, tag) in enumerate(bar):
            if time.monotonic() - started > args.budget_s:
                result["skipped_for_budget"] = len(args.ops) * (len(cases) - index)
                break
            if device == "cuda":
                torch.cuda.empty_cache()
            case = Case(shape, DTYPES[dtype_name], device)
            for op in args.ops:
                measure_op(op, case, tag, timer, copy_bps, rows)
            del case
            result["seconds"] = time.monotonic() - started
            print(f"gpu_bench: {dtype_name} {tuple(shape)} ({tag}) done at {result['seconds']:.0f} s", flush=True)
            if save is not None:
                save(result)
    except KeyboardInterrupt:
        result["interrupted"] = True
        print("gpu_bench: interrupted; keeping the measurements so far", flush=True)
    result["seconds"] = time.monotonic() - started
    return result


def measure_op(op, case, tag, timer, copy_bps, rows):
    reference = case.reference(op)
    scale = reference.abs().max().item() or 1.0
    for provider in PROVIDERS:
        row = dict(op=op, shape=list(case.shape), dtype=DTYPE_NAMES[case.dtype], provider=provider, bytes=case.nbytes,
                   tag=tag)
        try:
            fn = build(op, provider, case)
            out = fn()
            row["rel_err"] = float((out.double() - reference).abs().max().item() / scale)
            del out
            row["ms"] = timer(fn)
            row["gbps"] = moved_bytes(op, case) / (row["ms"] * 1e-3) / 1e9
            row["pct_copy"] = 100.0 * moved_bytes(op, case) / (row["ms"] * 1e-3) / copy_bps
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the report, the run goes on
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        rows.append(row)


def device_name(device: str) -> str:
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / GIB:.0f} GiB, {props.multi_processor_count} SMs)"
    return f"CPU ({platform.processor() or platform.machine()}, dry run)"


def versions() -> dict:
    found = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                 freqalign=freqalign.__version__)
    try:
        import triton

        found["triton"] = triton.__version__
    except ImportError:
        found["triton"] = None
    return found


def _lookup(rows):
    return {(r["op"], tuple(r["shape"]), r["dtype"], r["provider"]): r for r in rows}


def targets(result: dict):
    """(description, PASS/MISS, detail) for each target of issue #3 that the measurements cover."""
    rows, table, checks = result["rows"], _lookup(result["rows"]), []
    for provider in ("triton", "cuda"):
        mine = [r for r in rows if r["provider"] == provider and "ms" in r]
        if not mine:
            checks.append((f"{provider}: measured", "MISS", "no successful measurement"))
            continue
        for op, floor in (("pool_fwd", POOL_BW_TARGET), ("pool_bwd", POOL_BW_TARGET)):
            sel = [r for r in mine if r["op"] == op and r["bytes"] >= BIG_INPUT]
            if sel:
                worst = min(sel, key=lambda r: r["pct_copy"])
                checks.append((f"{provider} {op} >= {floor:.0%} of copy bandwidth (inputs >= 256 MB)",
                               "PASS" if worst["pct_copy"] >= 100 * floor else "MISS",
                               f"worst {worst['pct_copy']:.0f}% at {tuple(worst['shape'])} {worst['dtype']}"))
        sel = [r for r in mine if r["op"] == "dct2d" and max(r["shape"][2:]) <= 32]
        if sel:
            worst = min(sel, key=lambda r: r["pct_copy"])
            checks.append((f"{provider} dct2d >= {DCT_BW_TARGET:.0%} of copy bandwidth (H, W <= 32)",
                           "PASS" if worst["pct_copy"] >= 100 * DCT_BW_TARGET else "MISS",
                           f"worst {worst['pct_copy']:.0f}% at {tuple(worst['shape'])} {worst['dtype']}"))
        for other, floor in (("torch", VS_TORCH_TARGET), ("fcanet", VS_FCANET_TARGET)):
            ratios = []
            for r in mine:
                peer = table.get((r["op"], tuple(r["shape"]), r["dtype"], other))
                if peer and "ms" in peer:
                    ratios.append((peer["ms"] / r["ms"], r))
            if ratios:
                worst_ratio, worst = min(ratios, key=lambda t: t[0])
                checks.append((f"{provider} >= {floor:g}x {other} at every shape",
                               "PASS" if worst_ratio >= floor else "MISS",
                               f"worst {worst_ratio:.2f}x: {worst['op']} {tuple(worst['shape'])} {worst['dtype']}"))
        bf16 = [r for r in mine if r["dtype"] == "bf16" and "rel_err" in r]
        if bf16:
            worst = max(bf16, key=lambda r: r["rel_err"])
            checks.append((f"{provider} bf16 within {BF16_ERR_TARGET:g} relative error of float64",
                           "PASS" if worst["rel_err"] <= BF16_ERR_TARGET else "MISS",
                           f"worst {worst['rel_err']:.1e}: {worst['op']} {tuple(worst['shape'])}"))
    return checks


def markdown(result: dict) -> str:
    table = _lookup(result["rows"])
    lines = [f"# freqalign GPU kernels on {result['device']}", "",
             "Generated by `benchmarks/gpu/gpu_check.sh` (`benchmarks/gpu/gpu_bench.py`)"
             + (" -- DRY RUN on the CPU, numbers meaningless" if result["dry_run"] else "") + ".",
             f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.",
             f"Copy floor (dst.copy_(src), {result['copy_buffer_bytes'] / 2**20:.0f} MiB, read + write): "
             f"**{result['copy_gbps']:.0f} GB/s**. "
             "Times are do_bench medians in ms; `%copy` = bytes an ideal kernel moves (read x for the pooling "
             "forward, write the x-sized gradient for its backward, read + write for dct2d) per second, over "
             "the copy bandwidth; `err` = max |out - ref| / max |ref| against float64; `x torch` and "
             "`x fcanet` are speed-ups of the fused kernel.", ""]
    if result["skipped_for_budget"]:
        lines += [f"**{result['skipped_for_budget']} (op, shape, dtype) cases were skipped to stay in the time "
                  "budget.**", ""]
    if result.get("interrupted"):
        lines += ["**Interrupted (time limit): the tables hold the cases measured before.**", ""]
    lines += ["## Targets (issue #3)", "", "| target | result | detail |", "|---|---|---|"]
    lines += [f"| {name} | {verdict} | {detail} |" for name, verdict, detail in targets(result)]
    lines += ["", "Backends: " + "; ".join(f"`{k}` {v}" for k, v in result["backends"].items()) + "."]
    keys = sorted({(r["op"], r["dtype"]) for r in result["rows"]},
                  key=lambda t: (list(OPS).index(t[0]), list(DTYPES).index(t[1])))
    for op, dtype in keys:
        shapes = []
        for r in result["rows"]:
            if r["op"] == op and r["dtype"] == dtype and tuple(r["shape"]) not in shapes:
                shapes.append(tuple(r["shape"]))
        lines += ["", f"## {OPS[op]}, {dtype}", "",
                  "| shape | MB | triton ms | %copy | x torch | x fcanet | err | cuda ms | %copy | x torch | x fcanet "
                  "| err | torch ms | err | fcanet ms | err |", "|" + "---|" * 17]
        for shape in shapes:
            cells = [f"{shape[0]}x{shape[1]}x{shape[2]}x{shape[3]}"
                     + (" (key)" if any(r.get("tag") == "key" and tuple(r["shape"]) == shape for r in result["rows"])
                        else "")]
            rows = {p: table.get((op, shape, dtype, p), {}) for p in PROVIDERS}
            cells.append(f"{next(iter(rows.values())).get('bytes', 0) / 2**20:.0f}")
            for p in PROVIDERS:
                r = rows[p]
                if "ms" not in r:
                    reason = r.get("error", "not run")
                    cells += [f"n/a ({reason[:60]})"] + [""] * (4 if p in ("triton", "cuda") else 1)
                    continue
                cells.append(f"{r['ms']:.3f}")
                if p in ("triton", "cuda"):
                    cells.append(f"{r['pct_copy']:.0f}%")
                    for peer in ("torch", "fcanet"):
                        other = rows[peer]
                        cells.append(f"{other['ms'] / r['ms']:.2f}x" if "ms" in other else "")
                cells.append(f"{r['rel_err']:.1e}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Run time {result['seconds']:.0f} s. Command: `{result['command']}`.", ""]
    return "\n".join(lines)


def write(result: dict, out: str) -> None:
    """``bench.json`` and ``bench.md`` in ``out``, each written to a temporary name and renamed."""
    for name, text in (("bench.json", json.dumps(result, indent=1)), ("bench.md", markdown(result))):
        tmp = os.path.join(out, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(out, name))


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    result = run(args, save=lambda r: write(r, args.out))
    write(result, args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
