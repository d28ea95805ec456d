"""Optimiser parameter groups: weight decay on weights, none on biases and normalisation parameters."""

from __future__ import annotations

import torch.nn as nn

__all__ = ["weight_decay_param_groups"]


def _is_prototype_or_token(name: str) -> bool:
    """Prototype banks, the lesion prototype, learned tokens (the decoder's mask token) and position embeddings."""
    leaf = name.rsplit(".", 1)[-1]
    return "prototype" in leaf or "token" in leaf or "position" in name


def weight_decay_param_groups(
    model: nn.Module, weight_decay: float = 0.04, decay_prototypes_and_tokens: bool = True
) -> list[dict]:
    """Split the trainable parameters of ``model`` into a decayed and a non-decayed group.

    Biases and one-dimensional parameters (LayerNorm/BatchNorm scales) are never decayed. Frozen parameters
    (``requires_grad=False``, e.g. the teacher) are skipped.

    Args:
        model: the network to optimise.
        weight_decay: initial weight decay of the decayed group.
        decay_prototypes_and_tokens: True (default, the authors' DINO-style rule): every other parameter is
            decayed, including the per-position prototype banks, the shared lesion prototype (one-dimensional, but
            a prototype), the decoder's mask token and any learned position embedding or token. False: these are not
            decayed either (the earlier monai-afire default). The prototypes are unit-normalised in the forward pass, so
            decay on them only shrinks their raw norm (which enlarges the effective step of their direction).

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
        special = _is_prototype_or_token(name)
        if special:
            decayed = decay_prototypes_and_tokens and (param.ndim > 1 or "prototype" in name.rsplit(".", 1)[-1])
        else:
            decayed = param.ndim > 1 and name.rsplit(".", 1)[-1] != "bias"
        (decay if decayed else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError(f"weight_decay_param_groups: {type(model).__name__} has no trainable parameters.")
    return [
        {"params": decay, "weight_decay": float(weight_decay), "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
