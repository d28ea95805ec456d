"""Loading the pre-trained AFiRe teacher encoder into a downstream encoder."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn as nn

__all__ = ["load_pretrained_encoder", "extract_encoder_state_dict"]

#: keys of a training checkpoint under which the AFiRe model's state dict is looked for, in this order.
CHECKPOINT_MODEL_KEYS = ("model", "network", "state_dict")
#: prefixes of the encoder's weights inside an AFiRe state dict, in order of preference (teacher first).
ENCODER_PREFIXES = ("teacher.encoder.", "student.encoder.", "encoder.")


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def extract_encoder_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Find the encoder weights in a checkpoint.

    Accepted: a training checkpoint whose ``"model"`` (or ``"network"``, ``"state_dict"``) entry is an AFiRe state
    dict; a bare AFiRe state dict (the teacher's encoder, keys ``teacher.encoder.*``, is preferred over the
    student's); or a bare encoder state dict. A ``module.`` prefix left by DistributedDataParallel is removed.
    """
    state: Mapping[str, object] = checkpoint
    for key in CHECKPOINT_MODEL_KEYS:
        if isinstance(state.get(key), Mapping):
            state = state[key]  # type: ignore[assignment]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = _strip(tensors, "module.")
    for prefix in ENCODER_PREFIXES:
        found = _strip(tensors, prefix)
        if found:
            return found
    return tensors


def load_pretrained_encoder(
    path_or_state_dict: str | os.PathLike | Mapping[str, object], encoder: nn.Module, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load AFiRe pre-trained weights (the teacher encoder) into ``encoder``.

    Args:
        path_or_state_dict: a file saved with ``torch.save`` (read with ``weights_only=True`` onto the CPU), or an
            already loaded dict; see :func:`extract_encoder_state_dict` for the layouts understood.
        encoder: the downstream :class:`~monai_afire.networks.AFiReEncoder` (same architecture as pre-trained).
        strict: raise when keys are missing or unexpected; with False they are only returned.

    Returns:
        (missing_keys, unexpected_keys) as reported by ``encoder.load_state_dict``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no encoder weights were found, or a weight's shape differs (a different architecture).
        RuntimeError: with ``strict``, keys are missing or unexpected.
    """
    source = "state dict"
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = os.fspath(path_or_state_dict)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"load_pretrained_encoder: no checkpoint file at {source!r}.")
        checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    else:
        checkpoint = path_or_state_dict
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"load_pretrained_encoder: {source} holds a {type(checkpoint).__name__}, expected a dict.")
    state = extract_encoder_state_dict(checkpoint)
    own = encoder.state_dict()
    if not set(state) & set(own):
        raise ValueError(
            f"load_pretrained_encoder: no encoder weights found in {source} (first keys: {list(checkpoint)[:5]}); "
            "expected an AFiRe checkpoint ('model' -> 'teacher.encoder.*') or an encoder state dict."
        )
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs encoder {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        raise ValueError(
            f"load_pretrained_encoder: {source} was saved from a different architecture; shape mismatch in "
            f"{len(mismatched)} weights, e.g. " + "; ".join(mismatched[:3])
        )
    result = encoder.load_state_dict(state, strict=strict)
    return list(result.missing_keys), list(result.unexpected_keys)
