"""Training-loader throughput: images per second through the trainer's own path (``open_images``
-> ``BatchStream`` -> ``crop_batch``), per number of DataLoader workers and ``data_size``.

    python benchmarks/loader_throughput.py                       # a generated KonIQ-like folder
    python benchmarks/loader_throughput.py --dataset koniq10k:data/koniq10k --workers 0 2 4

Without ``--dataset`` it writes ``--images`` 1024x768 JPEGs in the KonIQ-10k layout to a
temporary folder. It prints a markdown table (``--out FILE`` also writes it); nothing is
written under benchmarks/results.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmark this checkout, wherever the script is run from
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402

from freqalign.train.batches import BatchStream, crop_batch, open_images  # noqa: E402
from freqalign.train.config import make_config  # noqa: E402


def throughput(spec: str, workers: int, data_size: int, batch: int, batches: int) -> float:
    """Images per second over ``batches`` batches, after one warm-up batch (worker start-up)."""
    cfg = make_config("paper", overrides={"data_size": data_size, "workers": workers})
    stream = BatchStream(open_images(spec, cfg), batch, seed=0, workers=workers)
    generator = torch.Generator().manual_seed(0)
    crop_batch(next(stream)[0], cfg.image_size, generator, cfg.hflip)
    start = time.perf_counter()
    for _ in range(batches):
        crop_batch(next(stream)[0], cfg.image_size, generator, cfg.hflip)
    return batch * batches / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="", help="dataset spec (default: a generated KonIQ layout)")
    p.add_argument("--images", type=int, default=64, help="images generated without --dataset")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--data-size", type=int, nargs="+", default=[0, 512])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--out", default="")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = args.dataset
        if not spec:
            from test_real_sizes import make_koniq  # the test suite's layout builder

            spec = make_koniq(os.path.join(tmp, "koniq"), sets=(args.images, 0, 0))
        rows = ["| workers | data_size | images/s |", "|---|---|---|"]
        for data_size in args.data_size:
            for workers in args.workers:
                rate = throughput(spec, workers, data_size, args.batch, args.batches)
                rows.append(f"| {workers} | {data_size or 'native'} | {rate:.1f} |")
                print(rows[-1], flush=True)
    table = "\n".join([f"Loader throughput, {spec if args.dataset else 'generated KonIQ layout'}, "
                       f"{torch.get_num_threads()} torch threads, batch {args.batch}:", ""] + rows)
    print("\n" + table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
