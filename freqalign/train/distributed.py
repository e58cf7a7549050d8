"""DDP helpers: set up a training process from torchrun's environment (``run.device.setup``,
seeds, determinism), wrap the model, gather results; only rank 0 writes."""
from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from typing import List, Optional

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError
from ..run.device import setup


def start(cfg):
    """Set up this training process: ``setup``, CPU threads, deterministic algorithms and the
    process's global seeds (``process_seed``); returns ``(rank, world, device)``."""
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    rank, world, device = setup(cfg.device, cfg.ddp_timeout)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    # deterministic mode also fills every new tensor with NaN to expose reads of uninitialised
    # memory: a debugging aid that changes no result and took 30% of a pretrained-trunk step
    torch.utils.deterministic.fill_uninitialized_memory = False
    seed = process_seed(cfg.seed, rank)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {world} processes")
    return rank, world, device


def process_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s random streams (data order within its shard, dropout,
    crops): rank 0 keeps ``seed`` (a one-process run is unchanged), every other rank gets its
    own stream."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def wrap(model, device: torch.device, world: int):
    """``model`` under DistributedDataParallel when there are several processes, else itself."""
    if world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)


def lost_processes(rank: int, world: int, wait: float = 10.0) -> Optional[List[int]]:
    """After a collective failed: the ranks that do not say they are still there within
    ``wait`` seconds (every process that is says so in the rendezvous store, torchrun's, which
    outlives the processes); None when the store cannot be reached either."""
    prefix = "freqalign/alive/{}/{}/".format(os.environ.get("TORCHELASTIC_RUN_ID", ""),
                                            os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                              is_master=False, timeout=timedelta(seconds=wait))
        store.set(f"{prefix}{rank}", "1")
        deadline = time.monotonic() + wait
        while True:
            lost = [r for r in range(world) if not store.check([f"{prefix}{r}"])]
            if not lost or time.monotonic() > deadline:
                return lost
            time.sleep(0.2)
    except (KeyError, ValueError, RuntimeError):  # no store address, or no store there
        return None


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def gather(obj):
    """A list with every process's ``obj`` (just ``[obj]`` in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def mean(value: float) -> float:
    """``value`` averaged over processes."""
    if not dist.is_initialized():
        return float(value)
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([float(value)], dtype=torch.float64, device=on)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def largest(value: int) -> int:
    """The largest of the processes' ``value`` (a collective: every rank calls it)."""
    if not dist.is_initialized():
        return int(value)
    on = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([int(value)], dtype=torch.int64, device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def any_process(flag: bool) -> bool:
    """``flag`` is true in some process (a collective: every rank calls it)."""
    return mean(float(flag)) > 0


def broadcast_buffers(model) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics) before an evaluation."""
    if dist.is_initialized():
        for b in model.buffers():
            dist.broadcast(b.data, 0)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
