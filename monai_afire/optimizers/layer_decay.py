"""Optimiser parameter groups with layer-wise learning-rate decay, for fine-tuning a ViT classifier."""

from __future__ import annotations

import re
from typing import Any

import torch.nn as nn

__all__ = ["layer_decay_param_groups"]


def _layer_id(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for transformer block i, num_layers + 1 for the final norm and the head."""
    if "patch_embedding" in name or name.endswith("cls_token"):
        return 0
    match = re.search(r"(?:^|\.)blocks\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def layer_decay_param_groups(
    model: nn.Module, base_lr: float, weight_decay: float, layer_decay: float = 0.75
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay for a ViT classifier.

    Block i of an encoder with N blocks gets ``base_lr * layer_decay ** (N - i)``; the embeddings
    ``layer_decay ** (N + 1)``; the final norm and the head ``base_lr``. Biases, norm weights (every parameter with
    fewer than 2 dimensions) and the class token get no weight decay. Frozen parameters are left out. Each group
    also holds ``lr_scale`` and ``layer_id``; use schedulers that scale each group's own initial lr (e.g.
    ``monai.optimizers.WarmupCosineSchedule`` or ``torch.optim.lr_scheduler.LambdaLR``) to keep the decay.

    Args:
        model: an :class:`~monai_afire.networks.AFiReClassifier` (or any module whose encoder blocks are named
            ``...blocks.<i>.``).
        base_lr: learning rate of the top layer.
        weight_decay: weight decay of the matrices.
        layer_decay: ratio between the learning rates of consecutive layers, in (0, 1].

    Returns:
        list of dicts for ``torch.optim.AdamW(groups)``.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay_param_groups: layer_decay must be in (0, 1], got {layer_decay}.")
    block_ids = {int(m.group(1)) for n, _ in model.named_parameters() if (m := re.search(r"blocks\.(\d+)\.", n))}
    num_layers = max(block_ids) + 1 if block_ids else 0
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = _layer_id(name, num_layers)
        no_decay = param.ndim < 2 or name.endswith("cls_token")
        key = (layer, no_decay)
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - layer)
            groups[key] = {
                "params": [],
                "lr": base_lr * scale,
                "lr_scale": scale,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "layer_id": layer,
            }
        groups[key]["params"].append(param)
    if not groups:
        raise ValueError("layer_decay_param_groups: the model has no trainable parameter.")
    return [groups[k] for k in sorted(groups)]
