"""Utilities of monai-afire: distributed helpers, checked weight loading, unwrapping, input checks, sync counting,
quiet loaders."""

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
from .errors import clean_errors, debug_enabled, user_message
from .host_sync import HostSyncCounter, optimizer_step_counters
from .quiet import nvimgcodec_notice_silenced
from .state_dict import check_state_dict, load_weights, read_state_dict
from .wrappers import unwrap_model

__all__ = [
    "HostSyncCounter",
    "all_reduce_",
    "check_image_size",
    "check_patch_size",
    "check_state_dict",
    "clean_errors",
    "debug_enabled",
    "distributed_ready",
    "distributed_sampler",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "load_weights",
    "nvimgcodec_notice_silenced",
    "optimizer_step_counters",
    "rank0_only",
    "read_state_dict",
    "unwrap_model",
    "user_message",
]
