"""Optimiser parameter groups: weight decay on weights, none on biases and normalisation parameters."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["weight_decay_param_groups"]


def weight_decay_param_groups(model: nn.Module, weight_decay: float = 0.04) -> list[dict]:
    """Split the trainable parameters of ``model`` into a decayed and a non-decayed group.

    Biases, one-dimensional parameters (LayerNorm/BatchNorm scales) and position embeddings or tokens are not decayed,
    as in DINO/iBOT style pre-training. Frozen parameters (``requires_grad=False``, e.g. the teacher) are skipped.

    Args:
        model: the network to optimise.
        weight_decay: initial weight decay of the decayed group.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay, "name": "decay"},
        {"params": others, "weight_decay": 0.0, "name": "no_decay"}]``; the decayed group is always index 0, which
        :class:`monai_afire.handlers.WeightDecaySchedule` relies on.

    Raises:
        ValueError: when the model has no trainable parameters.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if param.ndim <= 1 or leaf == "bias" or "position" in name or "token" in leaf or "prototype" in leaf:
            no_decay.append(param)
        else:
            decay.append(param)
    if not decay and not no_decay:
        raise ValueError(f"weight_decay_param_groups: {type(model).__name__} has no trainable parameters.")
    return [
        {"params": decay, "weight_decay": float(weight_decay), "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
