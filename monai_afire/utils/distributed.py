"""Distributed helpers, no-ops in a single process: process group from ``torchrun``, all-reduce, samplers, rank 0."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

__all__ = [
    "all_reduce_",
    "distributed_ready",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "rank0_only",
]


def distributed_ready() -> bool:
    """True when torch.distributed is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process (0 without an initialised process group)."""
    return dist.get_rank() if distributed_ready() else 0


def get_world_size() -> int:
    """Number of processes (1 without an initialised process group)."""
    return dist.get_world_size() if distributed_ready() else 1


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce ``tensor`` in place (``op`` "sum" or "max") when a process group exists; return it."""
    if distributed_ready():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def init_distributed(backend: str | None = None) -> torch.device:
    """Initialise the process group from the ``torchrun`` variables and return this process's device.

    Without ``WORLD_SIZE``/``RANK`` in the environment (a plain ``python`` run) nothing is initialised and the device
    is ``cuda`` when available, else ``cpu``. The backend defaults to ``nccl`` with CUDA and ``gloo`` otherwise.
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_cuda = torch.cuda.is_available() and backend in (None, "nccl")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if use_cuda else "gloo"))
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def distributed_sampler(dataset: Dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = True) -> Any:
    """A ``DistributedSampler`` when a process group is initialised, else None (use the loader's own shuffling)."""
    if get_world_size() == 1:
        return None
    return DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)


def rank0_only(handlers: Sequence[Any] | None) -> list[Any]:
    """``handlers`` on rank 0, an empty list on the other ranks (for loggers and writers)."""
    return list(handlers or []) if get_rank() == 0 else []
