"""All-reduce helpers that are no-ops without an initialised process group."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["distributed_ready", "all_reduce_"]


def distributed_ready() -> bool:
    """True when torch.distributed is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """All-reduce ``tensor`` in place (``op`` "sum" or "max") when a process group exists; return it."""
    if distributed_ready():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor
