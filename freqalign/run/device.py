"""The device of a process, and its process group when torchrun launched several."""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError


def setup(device: str, timeout: int = 1800):
    """Init the process group when launched by torchrun; returns (rank, world, torch.device).

    Backend: nccl for CUDA devices, gloo for CPU. Each process takes cuda:LOCAL_RANK, and waits
    at most ``timeout`` seconds in a collective for the others.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is visible (use --device cpu)")
        dev = torch.device("cuda", local if world > 1 else (torch.device(device).index or 0))
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout))
    return rank, world, dev


__all__ = ["setup"]
