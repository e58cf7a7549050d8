"""Can the training input pipeline feed a GPU? Images per second of the trainer's own path
(``open_images`` -> ``BatchStream`` -> ``crop_batch``) on KADID-like 512x384 PNGs and
KonIQ-like 1024x768 JPEGs generated at their real sizes, against what a ResNet-50 training step
consumes at the paper preset.

    python -m benchmarks.data.loader_throughput \
        --out benchmarks/results/kernels/loader_throughput.md

Measured, in one run (medians over ``--rounds`` passes, one torch thread):
- **per worker**: one image read as a DataLoader worker reads it (decode, ``data_size`` fit,
  float tensor), before (full decode, then a bicubic resize: the loader until this benchmark)
  and after (JPEGs decoded at a reduced DCT scale, ``read_rgb``'s ``max_side``);
- **main process**: the random 224 crops and flips of ``crop_batch``, per image;
- **pipeline**: ``BatchStream`` + ``crop_batch`` end to end with 0 .. ``--workers`` workers
  (this machine's cores bound what that can show).
The feed arithmetic divides the assumed GPU rate (``--gpu-rate``, see ``GPU_RATE_SOURCE``) by
the per-worker rate: the workers a run needs, against the ``--cores`` - 2 a machine can give.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from freqalign.data.files import fit_size, pil_to_tensor, read_rgb
from freqalign.data.domains import open_images
from freqalign.train.batches import BatchStream, crop_batch
from freqalign.run.config import make_config

REPO = Path(__file__).resolve().parents[2]

CONFIG = "configs/kadid10k-to-koniq10k.yaml"  # the paper setting: data_size 512, crops 224
GPU_RATE = 1900.0
GPU_RATE_SOURCE = (
    "assumed, not measured: ResNet-50 training on one A100 runs at 938 img/s in TF32 and 2470 "
    "img/s in mixed precision (NVIDIA DeepLearningExamples, PyTorch ResNet50 v1.5 README, DGX "
    "A100, batch 256); an H100/H200 is taken as 2x an A100, so about 1900 img/s in TF32, the "
    "precision the trainer runs in (fp32 weights, cuDNN TF32 convolutions, no autocast). The "
    "paper preset's batch of 32 per domain uses the GPU less well than batch 256, so this "
    "over-states what a step consumes. `benchmarks/gpu/gpu_check.sh` measures the real rate.")


def median_rate(fn, items, rounds: int) -> float:
    """Items per second of ``fn`` over ``items``: the median of ``rounds`` timed passes, after
    one untimed pass (file cache, allocator)."""
    for item in items:
        fn(item)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - start)
    return len(items) / statistics.median(times)


def per_worker_rates(dataset, rounds: int) -> dict:
    """One process's images/s reading ``dataset``'s images before and after reduced-scale JPEG
    decoding; ``dataset`` serves whole images fitted to its ``max_side`` / ``image_size``."""
    max_side, min_side = dataset.max_side, dataset.image_size

    def before(i):  # full decode, then the bicubic fit
        return pil_to_tensor(fit_size(read_rgb(dataset.paths[i]), max_side, min_side))

    indices = list(range(len(dataset)))
    return {"before": median_rate(before, indices, rounds),
            "after": median_rate(dataset.load_image, indices, rounds)}


def crop_rate(dataset, cfg, rounds: int) -> float:
    """Images/s of the main process's share: random crops and flips of whole images."""
    images = [dataset.load_image(i) for i in range(min(len(dataset), 32))]
    generator = torch.Generator().manual_seed(0)
    return median_rate(lambda batch: crop_batch(batch, cfg.image_size, generator, cfg.hflip),
                       [images], rounds) * len(images)


def pipeline_rate(spec: str, cfg, workers: int, batch: int, batches: int) -> float:
    """Images/s through ``BatchStream`` + ``crop_batch`` with ``workers`` DataLoader workers,
    after one untimed batch (worker start-up)."""
    stream = BatchStream(open_images(spec, cfg), batch, seed=0, workers=workers)
    generator = torch.Generator().manual_seed(0)
    crop_batch(next(stream)[0], cfg.image_size, generator, cfg.hflip)
    start = time.perf_counter()
    for _ in range(batches):
        crop_batch(next(stream)[0], cfg.image_size, generator, cfg.hflip)
    return batch * batches / (time.perf_counter() - start)


def make_datasets(root: str, images: int) -> dict:
    """KADID-like and KonIQ-like folders of ``images`` images each, in the official layouts."""
    from test_real_sizes import make_kadid, make_koniq  # the test suite's layout builders

    refs = max(images // 4, 1)
    return {"KADID-like, 512x384 PNG": make_kadid(os.path.join(root, "kadid"), refs=refs, levels=4),
            "KonIQ-like, 1024x768 JPEG": make_koniq(os.path.join(root, "koniq"),
                                                     sets=(refs * 4, 0, 0))}


def cpu_name() -> str:
    """The processor's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def feed_rows(name: str, rates: dict, gpu_rate: float, cores: int) -> list:
    rows = []
    for when in ("before", "after"):
        need = math.ceil(gpu_rate / rates[when])
        verdict = "yes" if need <= cores - 2 else "no"
        rows.append(f"| {name} | {when} | {rates[when]:.0f} | {need} | {verdict} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64, help="images per generated dataset")
    p.add_argument("--rounds", type=int, default=5, help="timed passes per per-worker rate")
    p.add_argument("--workers", type=int, default=2, help="pipeline runs with 0 .. N workers")
    p.add_argument("--batches", type=int, default=8, help="timed batches per pipeline run")
    p.add_argument("--gpu-rate", type=float, default=GPU_RATE,
                   help="images/s a training step consumes (default: the assumption in the report)")
    p.add_argument("--cores", type=int, default=16, help="cores of the GPU machine to feed")
    p.add_argument("--out", default="", help="also write the markdown report here")
    args = p.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs with one thread
    cfg = make_config(None, str(REPO / CONFIG), overrides={"workers": 0})
    per_worker, crops, pipeline = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in make_datasets(tmp, args.images).items():
            dataset = open_images(spec, cfg)
            per_worker[name] = per_worker_rates(dataset, args.rounds)
            crops[name] = crop_rate(dataset, cfg, args.rounds)
            pipeline[name] = [pipeline_rate(spec, cfg, w, cfg.batch_size, args.batches)
                              for w in range(args.workers + 1)]
            print(name, per_worker[name], f"crops {crops[name]:.0f}/s",
                  [f"{r:.0f}" for r in pipeline[name]], flush=True)
    lines = [
        "# Training-loader throughput", "",
        f"Command: `python -m benchmarks.data.loader_throughput --images {args.images} --rounds "
        f"{args.rounds} --workers {args.workers} --gpu-rate {args.gpu_rate:g} --cores "
        f"{args.cores}`", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, Python {platform.python_version()}; one torch thread. "
        f"`{CONFIG}`: data_size {cfg.data_size} (longer side), crops {cfg.image_size}, "
        f"batch {cfg.batch_size} per domain.", "",
        "## Per worker: images/s one DataLoader worker reads", "",
        "Before: full decode and a bicubic resize to `data_size`. After: JPEGs decoded by "
        "libjpeg at the DCT scale (1/2, 1/4, 1/8) that lands at or above `data_size`, then the "
        "same resize for what remains (none for 1024x768 -> 512x384). PNGs decode in full either "
        "way.", "",
        "| dataset | loader | images/s per worker | workers to feed the GPU | fits a "
        f"{args.cores}-core machine ({args.cores - 2} workers) |",
        "|---|---|---|---|---|"]
    for name, rates in per_worker.items():
        lines += feed_rows(name, rates, args.gpu_rate, args.cores)
    lines += ["", f"GPU rate: {args.gpu_rate:g} images/s, {GPU_RATE_SOURCE}", "",
              "## Main process and pipeline (after)", "",
              "| dataset | main-process crops, images/s | "
              + " | ".join(f"pipeline, {w} workers" for w in range(args.workers + 1)) + " |",
              "|---|---|" + "---|" * (args.workers + 1)]
    for name in per_worker:
        lines.append(f"| {name} | {crops[name]:.0f} | "
                     + " | ".join(f"{r:.0f}" for r in pipeline[name]) + " |")
    lines += ["", f"The pipeline columns are bounded by this machine's {os.cpu_count()} cores "
              "(workers and the main process share them); the per-worker rate and the "
              "main-process rate are what scale to the GPU machine."]
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
