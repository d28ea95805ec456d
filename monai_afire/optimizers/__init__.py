"""Optimiser parameter groups of monai-afire: weight decay (pre-training) and layer-wise lr decay (fine-tuning)."""

from __future__ import annotations

from .layer_decay import layer_decay_param_groups
from .param_groups import weight_decay_param_groups

__all__ = ["layer_decay_param_groups", "weight_decay_param_groups"]
