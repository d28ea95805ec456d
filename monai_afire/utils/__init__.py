"""Utilities of monai-afire: distributed helpers, checked weight loading, unwrapping, input checks, quiet loaders."""

from __future__ import annotations

from .checks import check_image_size, check_patch_size
from .distributed import (
    all_reduce_,
    distributed_ready,
    distributed_sampler,
    get_rank,
    get_world_size,
    init_distributed,
    rank0_only,
)
from .quiet import nvimgcodec_notice_silenced
from .state_dict import check_state_dict, load_weights, read_state_dict
from .wrappers import unwrap_model

__all__ = [
    "all_reduce_",
    "check_image_size",
    "check_patch_size",
    "check_state_dict",
    "distributed_ready",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "load_weights",
    "nvimgcodec_notice_silenced",
    "rank0_only",
    "read_state_dict",
    "unwrap_model",
]
