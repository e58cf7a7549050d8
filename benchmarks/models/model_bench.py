"""Model-level benchmark (issues #12, #18): one training step (forward + backward) of ResNet-50,
SE-ResNet-50 and FcaNet-ResNet-50, FcaNet with its eager attention layer and with freqalign's
fused layer, each also under ``torch.compile``; peak memory per step; and the attention layers'
share of the step.

Variants (same seed, same convolution weights; FcaNet variants also share their FC weights):

- ``resnet50``: torchvision ResNet-50;
- ``se-resnet50``: SE-ResNet-50, the same code as ``fcanet-fused`` at the DC frequency only
  (``add_attention(freqs=((0, 0),))``: SE up to a scale the first FC absorbs), the same FC
  weights: the floor of FcaNet's cost (both read the block output to pool it and to scale it);
- ``fcanet-eager``: FcaNet-ResNet-50 with FcaNet's own layer formulation (a (C, H, W) filter
  buffer, ``(x * filters).sum((2, 3))``; ``benchmarks/lib/fcanet_reference.py``);
- ``fcanet-fused``: FcaNet-ResNet-50 from ``freqalign.nn.add_attention`` (fused ``freq_pool``);
- ``compiled-*``: ``torch.compile`` of each (default mode).

A step is ``zero_grad``, forward, cross-entropy, backward, in train mode. After warm-up (which
includes compiling), the variants run interleaved rep by rep in a shuffled order; times are
medians over reps and ratios are medians of per-rep ratios, so a busy machine slows all alike.
The attention's share is measured twice: by difference (FcaNet step - ResNet-50 step, over the
FcaNet step), and directly, timing the 16 attention layers alone (forward + backward) on the
inputs they see in the model. Peak memory: one step per variant after a warm-up step, the growth
of ``torch.cuda.max_memory_allocated`` over it (GPU) or of the peak resident set (CPU: VmHWM -
VmRSS after resetting VmHWM through ``/proc/self/clear_refs``), measured on the CPU in a
subprocess with glibc's mmap threshold fixed at 64 KB (``MALLOC_MMAP_THRESHOLD_``), so that every
tensor is mapped when allocated and unmapped when freed and the resident set follows live
memory (the timed process keeps glibc's defaults). Writes a markdown report (default
``benchmarks/results/kernels/model_bench.md``) with the command, machine and versions.

    python -m benchmarks.models.model_bench                          # CPU: batch 16 at 224
    python -m benchmarks.models.model_bench --device cuda            # GPU: batch 128 at 224
    python -m benchmarks.models.model_bench --reps 3 --no-compile    # a quick look
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch.nn import functional as F

import freqalign
from benchmarks.lib.fcanet_reference import swap_in_eager
from freqalign.nn import MultiSpectralAttention, add_attention

REPO = Path(__file__).resolve().parents[2]

MODELS = ("resnet50", "se-resnet50", "fcanet-eager", "fcanet-fused")
ATTENTION_MODELS = ("se-resnet50", "fcanet-eager", "fcanet-fused")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 16 on CPU, 128 on GPU)")
    parser.add_argument("--size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--reps", type=int, default=5, help="timed steps per variant (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant after the "
                        "first call (default 1)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peak", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--peak-only", action="store_true", help=argparse.SUPPRESS)  # the CPU peak subprocess
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "kernels" / "model_bench.md"),
                        help="markdown report path ('-' for stdout only)")
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 128 if args.device.startswith("cuda") else 16
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_models(device, seed):
    torch.manual_seed(seed)
    base = torchvision.models.resnet50(weights=None)
    fused = add_attention(copy.deepcopy(base))  # FcaNet-ResNet-50, freqalign's layer
    eager = swap_in_eager(copy.deepcopy(fused))  # the same weights, FcaNet's layer formulation
    se = add_attention(copy.deepcopy(base), freqs=((0, 0),))
    se.load_state_dict(fused.state_dict())  # the same FC weights: only the frequencies differ
    return {"resnet50": base.to(device), "se-resnet50": se.to(device), "fcanet-fused": fused.to(device),
            "fcanet-eager": eager.to(device)}


def training_step(model, images, labels):
    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
    return step


def attention_step(layers, inputs, grads):
    """Forward + backward of the attention layers alone, each on the input it sees in the model."""
    def run(*xs):
        return [layer(x) for layer, x in zip(layers, xs)]

    return run, lambda fn: (lambda: torch.autograd.backward(fn(*inputs), grads))


def capture_attention_inputs(model, images):
    inputs, handles = [], []
    for module in model.modules():
        if isinstance(module, MultiSpectralAttention) or type(module).__name__ == "FcaNetAttention":
            handles.append(module.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach())))
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return inputs


def _rss(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field))


def peak_memory(fn, device) -> float:
    """Bytes the step's peak adds to what was live when it started (module docstring)."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak resident set (VmHWM) to the current one
    except OSError:
        return float("nan")
    before = _rss("VmRSS")
    fn()
    return _rss("VmHWM") - before


def peaks_of(steps, device, argv):
    """Peak memory per variant: here on a GPU, in the CPU subprocess (module docstring) otherwise."""
    if device.type == "cuda":
        return {name: peak_memory(fn, device) for name, fn in steps.items()}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    command = [sys.executable, "-m", "benchmarks.models.model_bench",
               *(sys.argv[1:] if argv is None else argv), "--peak-only"]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_once(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def measure(steps: dict, device, reps: int, warmup: int, seed: int):
    """First-call time (includes compiling), then interleaved timed reps; returns per-variant
    lists of seconds, aligned by rep."""
    first = {}
    for name, fn in steps.items():
        first[name] = time_once(fn, device)
        for _ in range(warmup):
            fn()
        print(f"  warmed up {name}: first call {first[name]:.1f} s", flush=True)
    times = {name: [] for name in steps}
    order = list(steps)
    rng = random.Random(seed)
    for rep in range(reps):
        rng.shuffle(order)
        for name in order:
            times[name].append(time_once(steps[name], device))
        print(f"  rep {rep + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1] * 1e3:.0f} ms" for n in steps),
              flush=True)
    return first, times


def median_ratio(a, b):
    return statistics.median(x / y for x, y in zip(a, b))


def backend_name(device: torch.device) -> str:
    return freqalign.backend.name_of(freqalign.backend.select(device))


def machine_line() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return " ".join(line.split(":", 1)[1].split())
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    command = " ".join(["python -m benchmarks.models.model_bench",
                        *(sys.argv[1:] if argv is None else argv)])
    print(f"model_bench: {args.device}, batch {args.batch} at {args.size}, {args.reps} reps", flush=True)

    models = build_models(device, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
    labels = torch.randint(0, 1000, (args.batch,), generator=gen).to(device)

    # The fused and eager FcaNet models compute the same function: check it once in eval mode.
    with torch.no_grad():
        check = images[:2]
        fused_out = models["fcanet-fused"].eval()(check)
        eager_out = models["fcanet-eager"].eval()(check)
    agreement = ((fused_out - eager_out).abs().max() / eager_out.abs().max()).item()
    for model in models.values():
        model.train()

    # -- whole training steps ----------------------------------------------------------------
    steps = {name: training_step(models[name], images, labels) for name in MODELS}
    if not args.no_compile:
        for name in MODELS:
            steps[f"compiled-{name}"] = training_step(torch.compile(models[name]), images, labels)
    if args.peak_only:
        for fn in steps.values():
            fn()
        print(json.dumps({name: peak_memory(fn, device) for name, fn in steps.items()}))
        return 0
    print("training steps:", flush=True)
    first, times = measure(steps, device, args.reps, args.warmup, args.seed)
    peaks = ({name: float("nan") for name in steps} if args.no_peak else peaks_of(steps, device, argv))

    # -- the 16 attention layers alone --------------------------------------------------------
    layer_inputs = capture_attention_inputs(models["fcanet-fused"], images)
    grads = [torch.randn(x.shape, generator=gen).to(device) for x in layer_inputs]
    leaves = [x.clone().requires_grad_(True) for x in layer_inputs]
    att_steps = {}
    for name in ATTENTION_MODELS:
        layers = [m for m in models[name].modules()
                  if isinstance(m, MultiSpectralAttention) or type(m).__name__ == "FcaNetAttention"]
        run, backward_of = attention_step(layers, leaves, grads)
        att_steps[name] = backward_of(run)
        if not args.no_compile:
            att_steps[f"compiled-{name}"] = backward_of(torch.compile(run))
    print("attention layers alone:", flush=True)
    att_first, att_times = measure(att_steps, device, args.reps, args.warmup, args.seed + 1)

    report = render(args, command, times, first, peaks, att_times, att_first, layer_inputs, agreement)
    print(report)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
        print(f"wrote {args.out}")
    return 0


def render(args, command, times, first, peaks, att_times, att_first, layer_inputs, agreement) -> str:
    ms = lambda seconds: statistics.median(seconds) * 1e3  # noqa: E731
    spread = lambda s: f"{min(s) * 1e3:.0f}-{max(s) * 1e3:.0f}"  # noqa: E731
    device = args.device if args.device == "cpu" else f"{args.device} ({torch.cuda.get_device_name()})"
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    lines = [
        "# Model-level benchmark: ResNet-50, SE-ResNet-50 and FcaNet-ResNet-50 (issues #12, #18)", "",
        f"Command: `{command}` (from the repository root).", "",
        f"Machine: {machine_line()}; {os.cpu_count()} logical CPUs, torch threads "
        f"{torch.get_num_threads()}; load average at the end {', '.join(f'{x:.2f}' for x in load)}. "
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, freqalign "
        f"{freqalign.__version__}, backend of the fused layer: {backend_name(torch.device(args.device))}.",
        "",
        f"Device {device}, batch {args.batch} at {args.size} x {args.size}, fp32, train mode. One step = "
        f"zero_grad + forward + cross-entropy + backward. {args.reps} timed reps per variant after "
        f"{args.warmup} warm-up step(s), interleaved in a shuffled order; medians (range in "
        f"brackets); ratios are medians of per-rep ratios.", "",
        f"The fused and eager FcaNet models agree: max |difference| / max |logit| = {agreement:.1e} "
        f"(fp32, eval mode).", "",
        "## Training step", "",
        "| variant | step ms (range) | x ResNet-50 | x SE-ResNet-50 | attention share (by difference) | "
        "peak MB | peak x SE | first call s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for prefix in ("", "compiled-"):
        base = f"{prefix}resnet50"
        if base not in times:
            continue
        for name in MODELS:
            key = f"{prefix}{name}"
            ratio = median_ratio(times[key], times[base])
            share = ("" if name == "resnet50" else
                     f"{statistics.median((t - b) / t for t, b in zip(times[key], times[base])) * 100:.1f}%")
            se = median_ratio(times[key], times[f"{prefix}se-resnet50"])
            lines.append(f"| {key} | {ms(times[key]):.0f} ({spread(times[key])}) | {ratio:.3f} | {se:.3f} | {share} | "
                         f"{peaks[key] / 2 ** 20:.0f} | {peaks[key] / peaks[f'{prefix}se-resnet50']:.3f} | "
                         f"{first[key]:.1f} |")
    lines += ["", "Fused vs eager FcaNet layer, whole step (median of per-rep ratios): "
              + "; ".join(f"{p or 'eager mode'}: eager / fused = "
                          f"{median_ratio(times[p + 'fcanet-eager'], times[p + 'fcanet-fused']):.3f}"
                          for p in ("", "compiled-") if p + "fcanet-eager" in times) + ".", "",
              "Issue #18 goals, whole step: FcaNet (fused) / SE-ResNet-50 <= 1.02 and peak memory within 2% "
              "of SE's: " + "; ".join(
                  f"{p or 'eager mode'}: time {median_ratio(times[p + 'fcanet-fused'], times[p + 'se-resnet50']):.3f}, "
                  f"peak {peaks[p + 'fcanet-fused'] / peaks[p + 'se-resnet50']:.3f}"
                  for p in ("", "compiled-") if p + "fcanet-fused" in times) + ".", ""]
    shapes = sorted({tuple(x.shape) for x in layer_inputs}, key=lambda s: -s[2])
    counts = {s: sum(tuple(x.shape) == s for x in layer_inputs) for s in shapes}
    lines += [
        "## The 16 attention layers alone", "",
        "Forward + backward of all 16 FcaNet layers, each on the input it sees in the model (" +
        ", ".join(f"{counts[s]} x {'x'.join(map(str, s))}" for s in shapes) + "). Share: of the "
        "matching FcaNet-ResNet-50 step median.", "",
        "| layers | ms (range) | x fused (same mode) | share of its model's step | first call s |",
        "|---|---|---|---|---|",
    ]
    for prefix in ("", "compiled-"):
        for name in ATTENTION_MODELS:
            key = f"{prefix}{name}"
            if key not in att_times:
                continue
            ratio = median_ratio(att_times[key], att_times[f"{prefix}fcanet-fused"])
            share = ms(att_times[key]) / ms(times[key]) * 100
            lines.append(f"| {key} | {ms(att_times[key]):.1f} ({spread(att_times[key])}) | {ratio:.2f} | "
                         f"{share:.1f}% | {att_first[key]:.1f} |")
    lines += ["", "Issue #18 goal, the 16 layers alone: FcaNet (fused) / SE layers <= 1.05: " + "; ".join(
        f"{p or 'eager mode'}: {median_ratio(att_times[p + 'fcanet-fused'], att_times[p + 'se-resnet50']):.3f}"
        for p in ("", "compiled-") if p + "fcanet-fused" in att_times) + "."]
    lines += ["", "First call: the first step's time, which includes `torch.compile`'s compilation for the "
              "compiled variants (with whatever the inductor cache already held).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
