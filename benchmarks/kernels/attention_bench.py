"""Attention-layer benchmark (issue #18): forward + backward of one channel-attention layer at
each of FcaNet-ResNet-50's four stage shapes, fused FcaNet layer against the SE layer (the same
code, DC only), against ``torch.compile`` of FcaNet's own formulation and of a plain SE layer,
and each fused op against its read/write floor.

Variants (same FC weights per shape):

- ``fused-fcanet``: ``MultiSpectralAttention(C, freqs="top16")`` (the fused op);
- ``fused-se``: ``MultiSpectralAttention(C, freqs=((0, 0),))``, SE up to a scale the first FC absorbs;
- ``compiled-fused-fcanet``: ``torch.compile`` of the fused layer (the op is opaque to inductor);
- ``compiled-fcanet``: ``torch.compile`` of FcaNet's formulation
  (``benchmarks/lib/fcanet_reference.py``);
- ``compiled-se``: ``torch.compile`` of ``x * sigmoid(fc(x.mean((2, 3))))``.

Floors: bytes each op moves over the copy bandwidth measured on the same tensor. The forward
reads x twice and writes a new y: the floor is a clone of x (read + write into a fresh
allocation, whose first-touch page faults every new output pays) plus one more read (half an
in-place ``copy_``); the backward reads grad and x, then grad again, and writes a new grad_x: a
clone plus two reads (one ``copy_``). Variants run interleaved rep by rep (shuffled); medians, and
ratios as medians of per-rep ratios.

    python -m benchmarks.kernels.attention_bench                 # CPU, batch 16
    python -m benchmarks.kernels.attention_bench --device cuda   # GPU, batch 128
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks.lib.fcanet_reference import from_attention
from freqalign.basis import grid_to_index, pool_filters
from freqalign.nn import MultiSpectralAttention
from freqalign.ops.fused_attention import kernel_op

REPO = Path(__file__).resolve().parents[2]

STAGES = ((256, 56), (512, 28), (1024, 14), (2048, 7))  # (C, H = W) of FcaNet-ResNet-50 at 224


class PlainSE(nn.Module):
    """Squeeze-and-excitation as torch code: ``x * sigmoid(fc(mean(x)))``, FC weights shared."""

    def __init__(self, fc: nn.Sequential):
        super().__init__()
        self.fc = fc

    def forward(self, x):
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=None, help="default 16 on CPU, 128 on GPU")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "kernels" / "attention_bench.md"),
                        help="markdown report path ('-': stdout only)")
    args = parser.parse_args(argv)
    args.batch = args.batch or (128 if args.device.startswith("cuda") else 16)
    return args


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def layer_step(layer, x, grad):
    return lambda: torch.autograd.backward(layer(x), grad)


def variants(channels, size, device, compile_):
    torch.manual_seed(0)
    fcanet = MultiSpectralAttention(channels, freqs="top16").to(device)
    se = MultiSpectralAttention(channels, freqs=((0, 0),)).to(device)
    se.fc.load_state_dict(fcanet.fc.state_dict())
    out = {"fused-fcanet": fcanet, "fused-se": se}
    if compile_:
        out["compiled-fused-fcanet"] = torch.compile(fcanet, fullgraph=True)
        out["compiled-fcanet"] = torch.compile(from_attention(fcanet, size, size), fullgraph=True)
        out["compiled-se"] = torch.compile(PlainSE(fcanet.fc), fullgraph=True)
    return out, fcanet


def op_steps(layer, x, grad):
    """The fused forward op and backward op alone (for the floors)."""
    indices = grid_to_index(layer.pool.freqs, x.shape[2], x.shape[3], layer.pool.grid)
    filters = pool_filters(indices, x.shape[2], x.shape[3], "ortho", torch.float32, x.device)
    w1, w2 = layer.fc[0].weight.detach(), layer.fc[2].weight.detach()
    forward = kernel_op(x)
    backward = getattr(torch.ops.freqalign, forward._qualified_op_name.split("::")[1] + "_backward")
    saved = forward(x, filters, w1, w2)
    copy_out = torch.empty_like(x)
    return {"forward op": lambda: forward(x, filters, w1, w2),
            "backward op": lambda: backward(grad, x, filters, w1, w2, *saved[1:]),
            "copy": lambda: copy_out.copy_(x), "clone": lambda: x.clone()}


def measure(steps, device, reps, seed):
    for fn in steps.values():
        fn(), fn()  # first call (compiles) and one warm-up
    times = {name: [] for name in steps}
    order, rng = list(steps), random.Random(seed)
    for _ in range(reps):
        rng.shuffle(order)
        for name in order:
            times[name].append(timed(steps[name], device))
    return times


def ratio(times, a, b):
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    command = " ".join(["python -m benchmarks.kernels.attention_bench",
                        *(sys.argv[1:] if argv is None else argv)])
    lines = [f"Command: `{command}`; "
             f"{os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, torch {torch.__version__}; "
             f"batch {args.batch}, fp32, {'channels_last' if args.channels_last else 'NCHW'}, {args.reps} reps.", "",
             "| C x H x W | fused-fcanet ms | x fused-se | x compiled-fcanet | x compiled-se | "
             "x compiled-fused | forward op / floor | backward op / floor |", "|---|---|---|---|---|---|---|---|"]
    total = {}
    for stage, (channels, size) in enumerate(STAGES):
        x = torch.randn(args.batch, channels, size, size, device=device).to(memory_format=fmt)
        grad = torch.randn_like(x)
        layers, fcanet = variants(channels, size, device, not args.no_compile)
        leaf = x.clone().requires_grad_(True)
        steps = {name: layer_step(layer, leaf, grad) for name, layer in layers.items()}
        steps.update(op_steps(fcanet, x, grad))
        times = measure(steps, device, args.reps, stage)
        for name in times:
            total.setdefault(name, []).append(statistics.median(times[name]))
        floor = lambda name, reads: statistics.median(  # noqa: E731 - per rep: op / (clone + reads/2 copies)
            t / (c + reads * k / 2) for t, c, k in zip(times[name], times["clone"], times["copy"]))
        fwd_floor, bwd_floor = floor("forward op", 1), floor("backward op", 2)
        cmp = [f"{ratio(times, 'fused-fcanet', b):.3f}" if b in times else "-"
               for b in ("fused-se", "compiled-fcanet", "compiled-se", "compiled-fused-fcanet")]
        lines.append(f"| {channels} x {size} x {size} | {statistics.median(times['fused-fcanet']) * 1e3:.1f} | "
                     + " | ".join(cmp) + f" | {fwd_floor:.2f} | {bwd_floor:.2f} |")
        print(lines[-1], flush=True)
    lines += ["", "Per-variant sums over the four shapes (ms; the 16 layers of FcaNet-ResNet-50 are 3, 4, 6 and 3 "
              "of these): " + ", ".join(f"{n} {sum(v) * 1e3:.1f}" for n, v in total.items() if "op" not in n
                                      and n not in ("copy", "clone")) + ".",
              f"Load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}."]
    report = "\n".join(lines)
    print(report)
    if args.out != "-":
        Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
