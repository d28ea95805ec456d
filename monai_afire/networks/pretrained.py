"""Loading AFiRe pre-training weights: the whole AFiRe model, or its teacher encoder into a downstream encoder."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from monai_afire.utils.state_dict import check_state_dict, read_state_dict
from monai_afire.utils.wrappers import unwrap_model

__all__ = [
    "checkpoint_has_lesion_prototype",
    "extract_encoder_state_dict",
    "load_afire_checkpoint",
    "load_pretrained_encoder",
]

#: the state-dict key of the student's lesion prototype (only in models built with ``lesion_prototype=True``)
LESION_PROTOTYPE_KEY = "student.head.lesion_prototype"

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
    state = read_state_dict(checkpoint, owner="extract_encoder_state_dict")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    for prefix in ENCODER_PREFIXES:
        found = _strip(tensors, prefix)
        if found:
            return found
    return tensors


def load_pretrained_encoder(
    path_or_state_dict: str | os.PathLike | Mapping[str, object],
    encoder: nn.Module,
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Load AFiRe pre-trained weights (the teacher encoder) into ``encoder``.

    Args:
        path_or_state_dict: a file saved with ``torch.save`` (read with ``weights_only=True`` onto the CPU), or an
            already loaded dict; see :func:`extract_encoder_state_dict` for the layouts understood.
        encoder: the downstream :class:`~monai_afire.networks.AFiReEncoder` (same architecture as pre-trained).
        strict: raise when keys are missing or unexpected; with False they are only returned.
        ignore_missing: encoder keys that may be missing (e.g. a fresh ``cls_token``).

    Returns:
        (missing_keys, unexpected_keys) of ``encoder``, without those of ``ignore_missing``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no encoder weights were found, a weight's shape differs (a different architecture), or with
            ``strict`` keys are missing or unexpected (see :func:`monai_afire.utils.check_state_dict`).
    """
    owner = "load_pretrained_encoder"
    source = "the given state dict"
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = repr(os.fspath(path_or_state_dict))
    checkpoint = read_state_dict(path_or_state_dict, owner=owner)
    state = extract_encoder_state_dict(checkpoint)
    if not set(state) & set(encoder.state_dict()):
        raise ValueError(
            f"{owner}: no encoder weights found in {source} (first keys: {list(checkpoint)[:5]}); "
            "expected an AFiRe checkpoint ('model' -> 'teacher.encoder.*') or an encoder state dict."
        )
    missing, unexpected = check_state_dict(
        encoder, state, strict=strict, ignore_missing=ignore_missing, source=source, owner=owner
    )
    encoder.load_state_dict(state, strict=False)
    return missing, unexpected


def checkpoint_has_lesion_prototype(checkpoint: str | os.PathLike | None) -> bool:
    """Whether a pre-training checkpoint (or bare AFiRe state dict) was trained with the lesion prototype.

    True for a model built with ``AFiRe(..., lesion_prototype=True)`` (the afire_pretrain bundle's
    ``afire_plus.json``), False for the authors' head, and False when ``checkpoint`` is None or not a file (loading it
    then fails with a clear message). Inference configs use it to build the network that fits the checkpoint.
    """
    if checkpoint is None or not os.path.isfile(checkpoint):
        return False
    return LESION_PROTOTYPE_KEY in read_state_dict(checkpoint, owner="checkpoint_has_lesion_prototype")


def load_afire_checkpoint(
    network: nn.Module, checkpoint: str | os.PathLike | None, map_location: Any = "cpu"
) -> nn.Module:
    """Load the ``model`` entry of a pre-training checkpoint (or a bare AFiRe state dict) into ``network``.

    Args:
        network: an AFiRe model of the architecture that was trained (DDP/compile wrappers are unwrapped).
        checkpoint: the checkpoint file (e.g. :func:`monai_afire.handlers.latest_checkpoint` of the bundle's
            ``models`` folder).
        map_location: device the tensors are loaded to.

    Returns:
        ``network`` with the weights loaded.

    Raises:
        ValueError: no checkpoint given, or its tensors do not fit ``network`` (names the mismatching keys; says so
            when only the lesion prototype of ``afire_plus.json`` differs).
        FileNotFoundError: no file at ``checkpoint``.
    """
    if checkpoint is None:
        raise ValueError("load_afire_checkpoint: no checkpoint given; train first or pass its path.")
    owner = "load_afire_checkpoint"
    state = read_state_dict(checkpoint, map_location=map_location, owner=owner)
    target = unwrap_model(network)
    if (LESION_PROTOTYPE_KEY in state) != (LESION_PROTOTYPE_KEY in target.state_dict()):
        trained = LESION_PROTOTYPE_KEY in state
        raise ValueError(
            f"{owner}: {os.fspath(checkpoint)!r} was trained {'with' if trained else 'without'} the lesion prototype, "
            f"the model is built {'without' if trained else 'with'} it: set lesion_prototype={trained} (the "
            "afire_pretrain bundle's afire_plus.json overlay sets it true), or use "
            "checkpoint_has_lesion_prototype(checkpoint)."
        )
    check_state_dict(target, state, source=repr(os.fspath(checkpoint)), owner=owner)
    target.load_state_dict(state, strict=False)
    return network
