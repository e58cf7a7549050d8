"""CPU benchmark report: time every provider per op and shape, check issue #2's targets, and
write ``cpu.md``, ``cpu.json`` and ``cpu.png``.

    python -m benchmarks.kernels.report_cpu            # full run, a few minutes
    python -m benchmarks.kernels.report_cpu --quick    # about a minute, fewer rounds

All providers of one (op, shape) are timed in the same process, interleaved: each round runs
every provider once (a sample of several calls) in a fresh random order, so machine noise
hits them alike and the ratios between them stay meaningful. Reported times are medians over
rounds. Each provider's output is also checked against a float64 reference.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

import freqalign
from benchmarks.lib import providers as P
from benchmarks.lib import report_text

REPO = Path(__file__).resolve().parents[2]

WRONG_TOLERANCE = 1e-4  # max |out - ref| / max |ref| above which a provider's output is flagged

ISSUE24_SHAPES = ((32, 2048, 7, 7), (32, 2048, 14, 14), (16, 1024, 32, 32))
# (op, shapes or None for all, test, limit, description, source); see check_targets.
TARGETS = (
    ("pool_fwd_grouped", ((32, 2048, 14, 14), (16, 1024, 32, 32)), "vs_floor", 2.0,
     "fused <= 2.0x read-once floor x.sum()", "issue #2"),
    ("pool_fwd_grouped", ((32, 2048, 14, 14), (16, 1024, 32, 32)), "speedup_best_plain", 5.0,
     ">= 5x faster than the best plain-PyTorch formulation", "issue #2"),
    ("pool_bwd_grouped", ((32, 2048, 14, 14), (16, 1024, 32, 32)), "vs_floor", 2.5,
     "fused backward <= 2.5x x.clone() floor", "issue #2"),
    ("pool_fwd_ungrouped", None, "speedup:matmul", 1.0,
     "no slower than the plain matmul x.view(B*C,HW) @ F.T", "issue #2"),
    ("dct2d_fwd", ((32, 2048, 7, 7), (32, 2048, 14, 14)), "speedup:scipy", 4.0,
     ">= 4x faster than scipy.fft.dctn (all cores)", "issue #2"),
    ("dct2d_fwd", ((32, 2048, 7, 7), (32, 2048, 14, 14)), "speedup:fa_torch", 4.0,
     ">= 4x faster than the plain-PyTorch reference", "issue #2"),
    ("pool_fwd_grouped", None, "speedup:compile_mul_sum", 1.0,
     "faster than torch.compile(mul+sum)", "docs/design.md section 8"),
    ("pool_fwd_grouped", ((32, 2048, 14, 14),), "vs_floor", 1.15,
     "fused <= 1.15x read-once floor x.sum()", "issue #24"),
    ("pool_fwd_ungrouped", ISSUE24_SHAPES, "speedup:compile_matmul", 1.0,
     "faster than torch.compile(matmul)", "issue #24"),
    ("dct2d_fwd", ISSUE24_SHAPES, "speedup:compile_matmul", 1.0,
     "faster than torch.compile(C_H @ x @ C_W.T)", "issue #24"),
    ("attention", ISSUE24_SHAPES, "speedup:compile_fcanet", 1.0,
     "faster than torch.compile(FcaNet's layer), forward + backward", "issue #24"),
)


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"--shapes takes BxCxHxW with positive sizes, got {text!r}")
    return shape


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter samples (~1 min)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kernels",
                        help="output folder for cpu.md, cpu.json, cpu.png")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per (op, shape), at most; default 21, quick 5")
    parser.add_argument("--sample-ms", type=float, help="target length of one timed sample; default 40, quick 10")
    parser.add_argument("--budget-s", type=float,
                        help="time per (op, shape) beyond which fewer rounds run; default 20, quick 4")
    parser.add_argument("--threads", type=int,
                        help="torch.set_num_threads and scipy workers (default: torch's choice, all cores)")
    parser.add_argument("--ops", nargs="+", choices=sorted(P.OPS), default=list(P.OPS))
    parser.add_argument("--shapes", nargs="+", type=_shape, default=list(P.SHAPES),
                        help="input shapes as BxCxHxW (default: the four of issue #2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (5 if args.quick else 21)
    args.budget_s = args.budget_s or (4.0 if args.quick else 20.0)
    args.min_rounds = min(args.rounds, 3 if args.quick else 7)
    args.sample_ms = args.sample_ms or (10.0 if args.quick else 40.0)
    return args


# --- timing --------------------------------------------------------------------------------------

def _time_calls(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_per_sample(fn, sample_s: float) -> tuple:
    """Warm ``fn`` up, then pick how many calls make one sample last about ``sample_s``.

    Returns (calls, estimated seconds per call).
    """
    fn()
    per_call = _time_calls(fn, 1)
    if per_call < sample_s / 4:  # a better estimate for fast ops
        per_call = _time_calls(fn, max(2, int(sample_s / 4 / max(per_call, 1e-7))))
    return max(1, round(sample_s / max(per_call, 1e-9))), per_call


def measure(fns: dict, rounds: int, sample_s: float, budget_s: float, min_rounds: int,
            rng: random.Random) -> dict:
    """Per-call seconds of each callable, one sample per round; rounds interleave them in a random order.

    Runs ``rounds`` rounds, fewer (but at least ``min_rounds``) when slow providers would take
    the whole (op, shape) past ``budget_s``.
    """
    calls, round_s = {}, 0.0
    for name, fn in fns.items():
        calls[name], per_call = calls_per_sample(fn, sample_s)
        round_s += calls[name] * per_call
    rounds = max(min_rounds, min(rounds, int(budget_s / max(round_s, 1e-9))))
    samples = {name: [] for name in fns}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            order = list(fns)
            rng.shuffle(order)
            for name in order:
                samples[name].append(_time_calls(fns[name], calls[name]))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: summarize(samples[name], calls[name]) for name in fns}


def paired_ratio(a: dict, b: dict) -> tuple:
    """(median, q1, q3) over rounds of a's time / b's time in the same round: robust to slow load changes."""
    ratios = sorted(x / y for x, y in zip(a["samples_ms"], b["samples_ms"]))
    return _quantile(ratios, 0.5), _quantile(ratios, 0.25), _quantile(ratios, 0.75)


def _quantile(sorted_values, q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values, calls: int) -> dict:
    """Median, quartiles and minimum in ms; the raw samples (in round order) are kept for paired ratios."""
    raw = [v * 1e3 for v in values]
    ms = sorted(raw)
    return {"median_ms": _quantile(ms, 0.5), "q1_ms": _quantile(ms, 0.25), "q3_ms": _quantile(ms, 0.75),
            "min_ms": ms[0], "rounds": len(ms), "calls_per_sample": calls, "samples_ms": raw}


def sgemm_gflops() -> float:
    """Measured fp32 matmul rate (1024^3, this process's threads): the compute roof for the arithmetic."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = min(_time_calls(lambda: a @ b, 5) for _ in range(5))
    return 2 * 1024 ** 3 / seconds / 1e9


def clone_page_faults(shape=(32, 2048, 14, 14)) -> dict:
    """Minor page faults per ``x.clone()`` of a large tensor: whether fresh outputs are faulted in per call."""
    x = torch.randn(shape)
    x.clone()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        x.clone()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
    return {"faults_per_clone": faults, "mb": x.numel() * 4 / 1e6, "pages_4k": x.numel() * 4 / 4096}


# --- one (op, shape) --------------------------------------------------------------------------

def run_case(op: P.Op, case: P.Case, args, rng) -> dict:
    """Build, check and time every provider of ``op`` on ``case``; ratios against the floor."""
    fns, unavailable, errors = {}, {}, {}
    reference = op.reference(case)
    for provider in op.providers:
        try:
            fn = provider.build(case)
        except P.Unavailable as exc:
            unavailable[provider.name] = str(exc)
            continue
        if provider.kind != "floor":
            errors[provider.name] = P.max_relative_error(fn(), reference)
        fns[provider.name] = fn
    del reference
    stats = measure(fns, args.rounds, args.sample_ms / 1e3, args.budget_s, args.min_rounds, rng)
    floor = stats[op.floor]
    plain = {n: s["median_ms"] for n, s in stats.items() if _kind(op, n) == "plain"}
    best_plain = min(plain, key=plain.get) if plain else None
    result = {"providers": {}, "unavailable": unavailable, "best_plain": best_plain,
              "rounds": stats[op.floor]["rounds"]}
    for name, s in stats.items():
        entry = dict(s, spread_pct=100 * (s["q3_ms"] - s["q1_ms"]) / s["median_ms"])
        entry["vs_floor"], *entry["vs_floor_iqr"] = paired_ratio(s, floor)
        if name in errors:
            entry["max_rel_error"] = errors[name]
            entry["wrong"] = errors[name] > WRONG_TOLERANCE
        if "fa_cpu" in stats:
            entry["fa_cpu_speedup"], *entry["fa_cpu_speedup_iqr"] = paired_ratio(s, stats["fa_cpu"])
        result["providers"][name] = entry
    return result


def _kind(op: P.Op, name: str) -> str:
    return next(p.kind for p in op.providers if p.name == name)


def check_targets(results: dict) -> list:
    """One row per (target, shape): measured value, limit, PASS / MISS / N/A and the margin."""
    rows = []
    for op_name, shapes, test, limit, text, source in TARGETS:
        if op_name not in results:
            continue
        for shape_key, res in results[op_name].items():
            if shapes is not None and shape_key not in {report_text.shape_key(s) for s in shapes}:
                continue
            row = {"op": op_name, "shape": shape_key, "target": text, "source": source, "limit": limit,
                   "test": test}
            fa = res["providers"].get("fa_cpu")
            if test == "speedup_best_plain":
                peer = res["best_plain"]
            elif test.startswith("speedup:"):
                peer = test.split(":", 1)[1]
            else:
                peer = None
            if fa is None or (peer is not None and peer not in res["providers"]):
                missing = "fa_cpu" if fa is None else peer
                row.update(status="N/A", value=None, note=f"{missing} not measured (see below)")
            elif test == "vs_floor":
                value, spread = fa["vs_floor"], fa["vs_floor_iqr"]
                row.update(value=value, iqr=spread, status="PASS" if value <= limit else "MISS",
                           margin=limit / value, peer=None)
            else:
                value, spread = (res["providers"][peer][k] for k in ("fa_cpu_speedup", "fa_cpu_speedup_iqr"))
                row.update(value=value, iqr=spread, status="PASS" if value >= limit else "MISS",
                           margin=value / limit, peer=peer)
            if "iqr" in row:  # the limit inside the ratio's interquartile range: the verdict is noise-bound
                row["within_noise"] = row["iqr"][0] <= limit <= row["iqr"][1]
            rows.append(row)
    return rows


# --- machine and run description -----------------------------------------------------------

def machine_info(args) -> dict:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for module in ("numpy", "scipy", "torch_dct"):
        try:
            from importlib.metadata import version
            versions[module] = version(module.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
            versions[module] = "not installed"
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "scipy_workers": P.SCIPY_WORKERS,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "versions": versions,
        "git": commit, "freqalign_path": str(Path(freqalign.__file__).parent),
        "freqalign_backends": freqalign.backends(),
        "command": "python -m benchmarks.kernels.report_cpu " + " ".join(sys.argv[1:]),
        "rounds": args.rounds, "min_rounds": args.min_rounds, "budget_s": args.budget_s,
        "sample_ms": args.sample_ms, "quick": args.quick,
        "load_avg_start": os.getloadavg(),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        P.SCIPY_WORKERS = args.threads
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    info = machine_info(args)
    started = time.perf_counter()
    info["sgemm_gflops"] = sgemm_gflops()
    info["clone_page_faults"] = clone_page_faults()
    results = {name: {} for name in args.ops}
    jobs = [(shape, name) for shape in args.shapes for name in args.ops]
    with tqdm(jobs, desc="cpu benchmarks", unit="case") as bar:
        for shape, name in bar:
            bar.set_postfix_str(f"{name} {report_text.shape_key(shape)}")
            case = P.make_case(shape, seed=args.seed)
            load = os.getloadavg()[0]
            results[name][report_text.shape_key(shape)] = run_case(P.OPS[name], case, args, rng)
            info["max_load_1min"] = max(info.get("max_load_1min", 0.0), load, os.getloadavg()[0])
            del case
            gc.collect()
    info["load_avg_end"] = os.getloadavg()
    info["duration_s"] = time.perf_counter() - started
    targets = check_targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "results": results, "targets": targets}
    (args.out / "cpu.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "cpu.md").write_text(report_text.markdown(payload))
    report_text.plot(payload, args.out / "cpu.png")
    print(report_text.target_table(targets))
    print(f"wrote {args.out / 'cpu.md'}, cpu.json, cpu.png in {info['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
