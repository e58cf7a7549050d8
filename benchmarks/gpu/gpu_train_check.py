"""A few training steps of the paper configuration on the GPU: images/s and freq_pool's share (issue #11).

The model is the trainer's (``build_model`` of preset ``paper``: ResNet-50 features, 224x224
crops, GAP regressor, the FreqPool discriminator at window position 0 with 16 frequencies), with
random weights, fed synthetic images; each step is the trainer's own domain-adaptation step
(``freqalign.train.step``: ``make_learner``, ``losses`` and ``update`` on 32 source + 32 target
crops: L1 quality loss on the source half, BCE domain loss through the reversed gradient, AdamW
with the preset's learning-rate groups), with the trainer's process settings
(``freqalign.train.distributed.start``: ``deterministic`` ->
``torch.use_deterministic_algorithms(warn_only)``, seeds; fp32 weights, no autocast). Per backend (``auto``'s pick, triton, then cuda and torch):
``--warmup`` steps, then ``--steps`` timed steps (synchronised wall clock) -> training images/s,
then ``--profile-steps`` under ``torch.profiler``: the GPU time of freq_pool (its forward ops and
everything the autograd engine runs for its backward, matched by name, outermost only) over
the GPU time of all kernels in the step. One more row runs the first backend under bf16
autocast (what mixed-precision training would see; not the trainer's default).

    python3 -m benchmarks.gpu.gpu_train_check --out train.json
    python3 -m benchmarks.gpu.gpu_train_check --dry-run --out train.json   # CPU, tiny: checks the script
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time

import torch
from torch.autograd import DeviceType

import freqalign
from freqalign.train import distributed
from freqalign.run.config import make_config, parse_overrides
from freqalign.train.step import losses, make_learner, update

POOL_NAME = re.compile(r"pool_?(forward|backward)|_Pool(Forward|Backward)", re.IGNORECASE)
# the fused kernels themselves (triton, cuda), as a cross-check of the op-based attribution
POOL_KERNEL = re.compile(r"_pool_(forward|backward)_kernel|pool_forward_rows|pool_forward_channels|pool_backward_rows")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--backends", default="triton,cuda,torch", help="comma-separated, in order")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per backend (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--profile-steps", type=int, default=2, help="profiled steps per backend (default 2)")
    parser.add_argument("--no-autocast-row", action="store_true", help="skip the bf16-autocast row")
    parser.add_argument("--budget-s", type=float, default=120.0, help="start no new backend after this")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU, 96x96 crops with a 3x3 grid, 1 image per domain: checks the script")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    if args.dry_run:  # one step of each kind is enough to check the script
        args.warmup, args.steps, args.profile_steps = min(args.warmup, 0), min(args.steps, 1), 1
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible; use --dry-run to check the script on the CPU")
    return args


def make_setup(args):
    device = torch.device("cpu" if args.dry_run else "cuda")
    overrides = parse_overrides(args.overrides)
    if args.dry_run:
        overrides = {"image_size": 96, "grid": 3, "window_size": 4, "batch_size": 1, **overrides}
    cfg = make_config("paper", overrides=overrides, device=device.type)
    _, _, device = distributed.start(cfg)  # as the trainer sets up its process
    return cfg, device


class Step:
    """The trainer's domain-adaptation step on a fixed synthetic batch (source then target)."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device
        self.learner = make_learner(cfg, device)
        self.feature_hw = self.learner.feature_hw
        self.learner.model.set_window(0, cfg.window_size)
        gen = torch.Generator().manual_seed(cfg.seed)
        b, s = cfg.batch_size, cfg.image_size
        self.x = torch.rand(2 * b, 3, s, s, generator=gen).to(device)
        self.y = torch.rand(b, generator=gen).to(device)
        self.learner.model.train()

    def __call__(self, autocast_dtype=None):
        ctx = torch.autocast(self.device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with ctx:  # the forward pass and losses; the update outside autocast
            step = losses(self.learner.net, self.x, self.y, self.cfg.batch_size, True, self.cfg,
                          0.5)
        update(self.learner.opt, step)
        return step.total


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def pool_time(prof, use_device: bool) -> dict:
    """GPU (CPU in a dry run) microseconds of freq_pool's forward and backward in ``prof``'s events:
    the outermost events whose names are a pooling kernel op (``freqalign::*pool_forward``,
    ``*pool_backward``, the torch backend's ``_PoolForward`` ...) or its autograd node, with
    everything they launched. Backward: autograd-engine nodes and pool_backward ops."""
    totals = {"forward": 0.0, "backward": 0.0}
    names = {}
    for event in prof.events():
        if event.device_type != DeviceType.CPU or not POOL_NAME.search(event.name):
            continue  # CPU-side ops only: their device_time_total holds the kernels they launched
        parent, nested = event.cpu_parent, False
        while parent is not None:
            if POOL_NAME.search(parent.name):
                nested = True
                break
            parent = parent.cpu_parent
        if nested:
            continue
        us = event.device_time_total if use_device else event.cpu_time_total
        lowered = event.name.lower()
        kind = "backward" if ("backward" in lowered or lowered.startswith("autograd::engine")) else "forward"
        totals[kind] += us
        names[event.name] = names.get(event.name, 0.0) + us
    totals["ops"] = {k: round(v, 1) for k, v in sorted(names.items(), key=lambda kv: -kv[1])[:8]}
    return totals


def measure(step, backend, autocast_dtype, args) -> dict:
    row = dict(backend=backend, precision="bf16 autocast" if autocast_dtype else "fp32",
               images_per_step=2 * step.cfg.batch_size)
    status = freqalign.backends()[backend] if backend != "auto" else "available"
    if status != "available":
        row["error"] = f"backend {backend}: {status}"
        return row
    device = step.device
    try:
        with freqalign.use_backend(backend):
            for _ in range(args.warmup):
                loss = step(autocast_dtype)
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                loss = step(autocast_dtype)
            sync(device)
            seconds = time.perf_counter() - start
            row.update(step_ms=1e3 * seconds / args.steps, images_per_s=args.steps * row["images_per_step"] / seconds,
                       loss=float(loss.detach()), loss_finite=bool(torch.isfinite(loss.detach()).item()))
            activities = [torch.profiler.ProfilerActivity.CPU]
            use_device = device.type == "cuda"
            if use_device:
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                for _ in range(args.profile_steps):
                    step(autocast_dtype)
                sync(device)
        pooled = pool_time(prof, use_device)
        averages = prof.key_averages()
        if use_device:  # the kernels themselves (as torch's profiler table totals them)
            timed = [e for e in averages
                     if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
            key = "self_device_time_total"
        else:
            timed, key = list(averages), "self_cpu_time_total"
        total = sum(getattr(e, key) for e in timed)
        steps = max(args.profile_steps, 1)
        kernels_us = sum(e.self_device_time_total for e in timed if use_device and POOL_KERNEL.search(e.key))
        row.update(profiled_steps=steps, clock="gpu kernels" if use_device else "cpu (dry run)",
                   step_kernel_ms=total / steps / 1e3,
                   freq_pool_forward_ms=pooled["forward"] / steps / 1e3,
                   freq_pool_backward_ms=pooled["backward"] / steps / 1e3,
                   freq_pool_share=(pooled["forward"] + pooled["backward"]) / total if total else None,
                   freq_pool_kernels_ms=kernels_us / steps / 1e3,
                   freq_pool_ops_us=pooled["ops"])
        top = sorted(timed, key=lambda e: -getattr(e, key))[:6]
        row["top_ops_ms"] = {e.key[:80]: round(getattr(e, key) / steps / 1e3, 3) for e in top}
    except Exception as exc:  # noqa: BLE001 - recorded, the next backend still runs
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400]
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    cfg, device = make_setup(args)
    step = Step(cfg, device)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.dry_run:  # the CPU backends instead of the GPU ones
        backends = [b for b in backends if b not in ("cuda", "triton")] or \
            ["cpu" if freqalign.backends()["cpu"] == "available" else "torch"]
    plan = [(b, None) for b in backends]
    if not args.no_autocast_row and backends:
        plan.append((backends[0], torch.bfloat16))
    rows = []
    for backend, autocast_dtype in plan:
        if time.monotonic() - started > args.budget_s:
            rows.append(dict(backend=backend, error="skipped: time budget"))
            continue
        row = measure(step, backend, autocast_dtype, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = dict(device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (dry run)",
                  config=dict(preset=cfg.preset, backbone=cfg.backbone, image_size=cfg.image_size,
                              batch_per_domain=cfg.batch_size, window_size=cfg.window_size, grid=cfg.grid,
                              deterministic=cfg.deterministic, feature_map=list(step.feature_hw)),
                  warmup=args.warmup, steps=args.steps, rows=rows, dry_run=args.dry_run,
                  seconds=round(time.monotonic() - started, 1))
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    return 0 if rows and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
