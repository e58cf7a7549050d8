"""Rendering of the CPU benchmark results: the markdown report (tables, target check, the
bytes-and-flops arithmetic of a missed target) and the PNG chart. Used by ``report_cpu.py``."""
from __future__ import annotations

from . import providers as P

MB = 1e6


def shape_key(shape) -> str:
    return "x".join(str(d) for d in shape)


def _label(op_name: str, provider: str) -> str:
    return next(p.label for p in P.OPS[op_name].providers if p.name == provider)


def work(op_name: str, shape) -> tuple:
    """(bytes moved, flops, what) of the ideal fused implementation of ``op_name`` at ``shape``."""
    b, c, h, w = shape
    n, k = b * c * h * w, P.K
    if op_name == "pool_fwd_grouped":
        return 4 * (n + b * c), 2 * n, "read x once, write (B, C); one multiply-add per element"
    if op_name == "pool_bwd_grouped":
        return 4 * (n + b * c), n, "read grad (B, C), write grad_x once; one multiply per element"
    if op_name == "pool_fwd_ungrouped":
        return 4 * (n + b * c * k), 2 * n * k, "read x once, write (B, C, K); K multiply-adds per element"
    if op_name == "dct2d_fwd":
        return 8 * n, 2 * n * (h + w), "read x and write X once; separable matmul, 2(H+W) flops per element"
    if op_name == "attention":
        return 4 * 6 * n, 8 * n, ("forward: read x twice, write y; backward: read grad twice and x once, "
                                  "write grad_x; about 8 flops per element")
    raise KeyError(op_name)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _shapes(results_op: dict) -> list:
    return list(results_op)


def _op_tables(op_name: str, res: dict) -> str:
    shapes = _shapes(res)
    names = [p.name for p in P.OPS[op_name].providers if any(p.name in res[s]["providers"] for s in shapes)]
    head = "| provider | " + " | ".join(shapes) + " |\n|---|" + "---|" * len(shapes) + "\n"

    def table(cell) -> str:
        rows = []
        for name in names:
            cells = []
            for s in shapes:
                entry = res[s]["providers"].get(name)
                cells.append("n/a" if entry is None else cell(entry, s, name))
            rows.append(f"| {_label(op_name, name)} | " + " | ".join(cells) + " |")
        return head + "\n".join(rows) + "\n"

    def ms_cell(e, s, name):
        flag = " **WRONG**" if e.get("wrong") else ""
        best = " (best plain)" if res[s]["best_plain"] == name else ""
        return f"{_fmt_ms(e['median_ms'])} ±{e['spread_pct']:.0f}%{best}{flag}"

    floor = _label(op_name, P.OPS[op_name].floor)
    out = [f"### {P.OPS[op_name].title}\n",
           "Median ms per call (± = interquartile range over rounds, % of the median):\n",
           table(ms_cell),
           f"\nRatio to the floor `{floor}` (lower is better):\n",
           table(lambda e, s, n: f"{e['vs_floor']:.2f}x")]
    if any("fa_cpu" in res[s]["providers"] for s in shapes):
        out += ["\nSpeed-up of freqalign cpu over each provider (provider time / freqalign cpu time):\n",
                table(lambda e, s, n: f"{e['fa_cpu_speedup']:.2f}x" if "fa_cpu_speedup" in e else "n/a")]
    out.append("\nRounds: " + ", ".join(f"{s}: {res[s]['rounds']}" for s in shapes) + ".\n")
    errors = [e["max_rel_error"] for s in shapes for e in res[s]["providers"].values() if "max_rel_error" in e]
    wrong = [(s, n) for s in shapes for n, e in res[s]["providers"].items() if e.get("wrong")]
    if errors:
        out.append(f"\nOutputs checked against a float64 reference: largest relative error "
                   f"{max(errors):.1e}" + (f"; WRONG outputs: {wrong}" if wrong else "") + ".\n")
    missing = sorted({f"{_label(op_name, n)}: {why}" for s in shapes for n, why in res[s]["unavailable"].items()})
    if missing:
        out.append("\nNot measured: " + "; ".join(missing) + ".\n")
    return "".join(out)


def target_table(targets: list) -> str:
    lines = ["| target | source | shape | measured | limit | status | margin |", "|---|---|---|---|---|---|---|"]
    for t in targets:
        if t["status"] == "N/A":
            lines.append(f"| {t['target']} | {t['source']} | {t['shape']} | - | {t['limit']:g}x | N/A | "
                         f"{t['note']} |")
            continue
        spread = f" (IQR {t['iqr'][0]:.2f}-{t['iqr'][1]:.2f})"
        if t["test"] == "vs_floor":
            margin = (f"{100 * (t['margin'] - 1):.0f}% headroom" if t["status"] == "PASS"
                      else f"{100 * (1 / t['margin'] - 1):.0f}% over the limit")
            measured = f"{t['value']:.2f}x floor{spread}"
        else:
            margin = (f"{100 * (t['margin'] - 1):.0f}% above" if t["status"] == "PASS"
                      else f"{100 * (1 - t['margin']):.0f}% short")
            measured = f"{t['value']:.2f}x speed-up vs {t['peer']}{spread}"
        noise = " (limit within the IQR: noise-bound)" if t["within_noise"] else ""
        lines.append(f"| {t['target']} | {t['source']} | {t['shape']} | {measured} | {t['limit']:g}x | "
                     f"**{t['status']}** | {margin}{noise} |")
    return "\n".join(lines) + "\n"


def miss_arithmetic(target: dict, res: dict, sgemm_gflops: float) -> str:
    """Why a missed target was missed: required time vs the bytes/flops roofline of this machine."""
    op_name = target["op"]
    shape = tuple(int(d) for d in target["shape"].split("x"))
    entries = res["providers"]
    fa = entries["fa_cpu"]
    floor_name = P.OPS[op_name].floor
    floor_ms = entries[floor_name]["median_ms"]
    # The required time, consistent with the paired ratio that decided PASS / MISS.
    if target["test"] == "vs_floor":
        required = fa["median_ms"] * target["limit"] / target["value"]
        against = f"{target['limit']:g} x the floor, median {floor_ms:.3f} ms"
    else:
        required = fa["median_ms"] * target["value"] / target["limit"]
        against = f"{target['peer']}, median {entries[target['peer']]['median_ms']:.3f} ms, / {target['limit']:g}"
    nbytes, flops, what = work(op_name, shape)
    b, c, h, w = shape
    floor_bytes = 4 * b * c * h * w * (1 if floor_name == "floor_sum" else 2)
    bandwidth = floor_bytes / (floor_ms / 1e3)  # bytes/s the floor reaches in this run
    t_mem = nbytes / bandwidth * 1e3
    t_flop = flops / (sgemm_gflops * 1e9) * 1e3
    bound = max(t_mem, t_flop)
    limit_kind = "memory" if t_mem >= t_flop else "arithmetic"
    text = [f"**{target['target']} at {target['shape']}: MISS.** freqalign cpu takes {fa['median_ms']:.3f} ms "
            f"(±{fa['spread_pct']:.0f}%); the target needs at most {required:.3f} ms ({against}). "
            f"The work: {what}: {nbytes / MB:.1f} MB and {flops / 1e6:.0f} MFLOP. "
            f"At the bandwidth the floor `{_label(op_name, floor_name)}` reaches in this run "
            f"({bandwidth / 1e9:.1f} GB/s over {floor_bytes / MB:.1f} MB) the memory traffic takes {t_mem:.3f} ms; "
            f"at this machine's measured fp32 sgemm rate ({sgemm_gflops:.0f} GFLOP/s) the arithmetic takes "
            f"{t_flop:.3f} ms. The bound is {bound:.3f} ms ({limit_kind}); freqalign cpu runs at "
            f"{100 * bound / fa['median_ms']:.0f}% of it, {fa['median_ms'] / required:.2f}x slower than required."]
    if bound > required:
        text.append(f" The target asks for less than that bound: no implementation could meet it under this "
                    f"run's conditions (the bound is {bound / required:.2f}x the required time).")
    else:
        text.append(f" The bound is below the requirement, so the target is reachable in principle; "
                    f"the gap is the kernel (or the run's noise, if the spread above is comparable to "
                    f"the {100 * (fa['median_ms'] / required - 1):.0f}% miss).")
    return "".join(text) + "\n"


def _page_fault_note(m: dict) -> str:
    """Whether large fresh outputs were page-faulted in on every call in this run (measured on one clone)."""
    pf = m.get("clone_page_faults")
    if not pf:
        return ""
    share = pf["faults_per_clone"] / pf["pages_4k"]
    if share < 0.5:
        return (f"Large outputs reuse memory here ({pf['faults_per_clone']:.0f} page faults per {pf['mb']:.0f} MB "
                f"clone), so the output-writing ops pay no page-fault cost.\n\n")
    return (f"Ops that return a large new tensor (`x.clone()`, the backward, the DCT) pay for fresh pages: "
            f"PyTorch's CPU allocator hands big blocks back to the OS, so each call faults its output in "
            f"({pf['faults_per_clone']:.0f} minor page faults per {pf['mb']:.0f} MB clone in this run, one per "
            f"4 KiB page). That cost can exceed the copy itself; the clone floor pays it too, so ratios to "
            f"it stay fair.\n\n")


def _load_warning(m: dict) -> str:
    """A loud note when other jobs competed for the CPUs during the run."""
    peak = m.get("max_load_1min", 0.0)
    if peak <= m["logical_cpus"]:
        return ""
    return (f"**Warning: the machine was busy.** The 1-minute load average reached {peak:.1f} on "
            f"{m['logical_cpus']} CPUs during this run, so other jobs took CPU time from it. Multi-threaded "
            f"ops then wait for a descheduled thread, so times grow, spread (see the ± columns) and bunch up at "
            f"multiples of a scheduler time slice whatever the op, and a "
            f"memory floor measured under load understates the machine. Treat absolute times and "
            f"near-limit verdicts with care and rerun the command at a quiet moment; on a machine that is "
            f"never quiet, `--threads 1` sidesteps the waits (every provider then runs on one core).\n\n")


def markdown(payload: dict) -> str:
    m, results, targets = payload["machine"], payload["results"], payload["targets"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    backends = ", ".join(f"`{k}`: {v}" for k, v in m["freqalign_backends"].items())
    out = [
        "# freqalign CPU benchmarks\n\n",
        f"Measured {m['date_utc']} on {m['cpu_model']}, {m['logical_cpus']} logical CPUs, "
        f"torch threads {m['torch_threads']}, scipy workers {m.get('scipy_workers', m['logical_cpus'])} "
        f"(CPU capability {m['cpu_capability']}); {versions}. "
        f"Checkout {m['git']}, freqalign from `{m['freqalign_path']}`; backends: {backends}. "
        f"Measured fp32 sgemm rate: {m['sgemm_gflops']:.0f} GFLOP/s.\n\n",
        f"Reproduce: `{m['command'].strip()}` (from the repository root). "
        f"Up to {m['rounds']} interleaved rounds per (op, shape) (at least {m['min_rounds']}; fewer when "
        f"slow providers would exceed {m['budget_s']:g} s per (op, shape): the count is under each table), "
        f"samples of about {m['sample_ms']:g} ms (several calls each for fast ops), medians reported; "
        f"run took {m['duration_s']:.0f} s. "
        f"Load average (1, 5, 15 min) {tuple(round(v, 2) for v in m['load_avg_start'])} at the start and "
        f"{tuple(round(v, 2) for v in m['load_avg_end'])} at the end: on a shared machine, other jobs "
        f"slow every provider, but all providers of one table share one process and are interleaved "
        f"round by round, so the ratios between them hold better than the absolute times. Every ratio "
        f"is the median over rounds of the two providers' per-round ratio (paired), so it can differ "
        f"slightly from the ratio of the medians.\n\n",
        "Inputs: `torch.randn` fp32, contiguous; K = 16 frequencies = zigzag positions 0..15 of the 7x7 "
        "grid mapped to the feature size (`freqalign.grid_to_index(freqalign.window(0, 16), H, W)`). "
        "Set-up (filter buffers, `torch.compile`, the forward pass of backward benchmarks) is outside the "
        "timed region; freqalign providers go through the public API (`freq_pool`, `dct2d`, autograd). "
        "Backward benchmarks time `torch.autograd.grad(y, x, g, retain_graph=True)` only; the attention "
        "benchmark times a whole step, forward and `torch.autograd.grad` of x and both FC weights. "
        "The smaller inputs fit in this CPU's last-level cache, so their floors measure cache, not DRAM, "
        "bandwidth; the ratios compare like with like.\n\n",
        _page_fault_note(m),
        _load_warning(m),
        "## Targets\n\n",
        "Measured = the median over rounds of the per-round ratio, with its interquartile range (IQR); "
        "a limit inside the IQR means this run cannot tell PASS from MISS reliably.\n\n",
        target_table(targets), "\n",
    ]
    misses = [t for t in targets if t["status"] == "MISS"]
    if misses:
        out.append("### Why the missed targets were missed\n\n")
        for t in misses:
            out.append(miss_arithmetic(t, results[t["op"]][t["shape"]], m["sgemm_gflops"]) + "\n")
    out.append("## Results\n\n![ratio to floor](cpu.png)\n\n")
    for op_name, res in results.items():
        out.append(_op_tables(op_name, res) + "\n")
    return "".join(out)


def plot(payload: dict, path) -> None:
    """One panel per op: each provider's time as a multiple of the op's memory floor, per shape."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    results = payload["results"]
    limits = {t["op"]: t["limit"] for t in payload["targets"] if t["test"] == "vs_floor"}
    fig, axes = plt.subplots(len(results), 1, figsize=(11, 3.6 * len(results)), squeeze=False)
    for ax, (op_name, res) in zip(axes[:, 0], results.items()):
        op = P.OPS[op_name]
        shapes = _shapes(res)
        names = [p.name for p in op.providers
                 if p.name != op.floor and any(p.name in res[s]["providers"] for s in shapes)]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j, s in enumerate(shapes) if name in res[s]["providers"]]
            ys = [res[s]["providers"][name]["vs_floor"] for s in shapes if name in res[s]["providers"]]
            style = {"color": "black"} if name == "fa_cpu" else {}
            ax.bar(xs, ys, width, label=_label(op_name, name), **style)
        ax.axhline(1.0, color="grey", linewidth=1)
        if op_name in limits:
            ax.axhline(limits[op_name], color="red", linestyle="--", linewidth=1,
                       label=f"target {limits[op_name]:g}x floor")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="y", linewidth=0.3)
        ax.set_xticks(range(len(shapes)), shapes)
        ax.set_ylabel(f"time / {_label(op_name, op.floor).split(' ')[0]}")
        ax.set_title(f"{op.title} (lower is better)")
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    m = payload["machine"]
    fig.suptitle(f"freqalign CPU benchmarks, {m['date_utc']}: {m['cpu_model']}, {m['torch_threads']} threads, "
                 f"peak 1-min load {m.get('max_load_1min', 0):.1f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
