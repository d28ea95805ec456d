"""Checked state-dict loading: every weight file of monai-afire is read and matched against its module here."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from .wrappers import unwrap_model

__all__ = ["check_state_dict", "load_weights", "read_state_dict"]

#: entries of a training checkpoint that hold the model's state dict, looked for in this order.
MODEL_KEYS = ("model", "network", "state_dict")

StateSource = str | os.PathLike | Mapping[str, Any]


def _describe(source: StateSource) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the given state dict"


def read_state_dict(
    source: StateSource, key: str | None = None, map_location: Any = "cpu", owner: str = "read_state_dict"
) -> dict[str, Any]:
    """The state dict held by a weight file or an already loaded dict.

    Files are read with ``torch.load(weights_only=True)``. ``key`` names the entry to use when the file saved several
    objects (e.g. ``"model"`` of a pre-training checkpoint); without it the first of ``"model"``, ``"network"``,
    ``"state_dict"`` that holds a dict is used, else the file itself. A ``module.`` prefix on every key (left by
    DistributedDataParallel) is removed.

    Args:
        source: a path, or a dict (a checkpoint or a state dict).
        key: the entry holding the state dict, or None to find it.
        map_location: device the tensors are loaded to.
        owner: name shown at the start of error messages.

    Raises:
        FileNotFoundError: no file at ``source``.
        ValueError: the file holds no dict, or has no entry ``key``.
    """
    where = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"{owner}: no weight file at {where}; train first or pass its path.")
        source = torch.load(source, map_location=map_location, weights_only=True)
    if not isinstance(source, Mapping):
        raise ValueError(f"{owner}: {where} holds a {type(source).__name__}, expected a dict of tensors.")
    if key is not None:
        if not isinstance(source.get(key), Mapping):
            raise ValueError(f"{owner}: {where} has no entry {key!r} (entries: {sorted(map(str, source))[:8]}).")
        state = source[key]
    else:
        state = next((source[k] for k in MODEL_KEYS if isinstance(source.get(k), Mapping)), source)
    state = dict(state)
    if state and all(str(k).startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def check_state_dict(
    module: nn.Module,
    state: Mapping[str, Any],
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
    source: str = "the state dict",
    owner: str = "check_state_dict",
) -> tuple[list[str], list[str]]:
    """Compare ``state`` with ``module.state_dict()`` before loading it.

    Args:
        module: the module the weights are for.
        state: the state dict.
        strict: also refuse missing and unexpected keys (shapes are always checked).
        ignore_missing: keys of the module that may be missing (e.g. a fresh ``cls_token``).
        source: where the weights come from, for the messages.
        owner: name shown at the start of error messages.

    Returns:
        (missing keys, unexpected keys), without those of ``ignore_missing``.

    Raises:
        ValueError: a weight's shape differs, or with ``strict`` keys are missing or unexpected; the message names the
            first ones and ``source``.
    """
    own = module.state_dict()
    wrong = [
        f"{k}: weights {tuple(v.shape)} vs module {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = sorted(k for k in set(own) - set(state) if k not in set(ignore_missing))
    unexpected = sorted(set(state) - set(own))
    if wrong or (strict and (missing or unexpected)):
        raise ValueError(
            f"{owner}: {source} does not fit {type(module).__name__} (another architecture or size?): "
            f"{len(wrong)} shape mismatches {wrong[:3]}, {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}."
        )
    return missing, unexpected


def load_weights(
    module: nn.Module,
    source: StateSource,
    key: str | None = None,
    strict: bool = True,
    map_location: Any = "cpu",
    owner: str = "load_weights",
) -> nn.Module:
    """Read weights (:func:`read_state_dict`), check them (:func:`check_state_dict`) and load them into ``module``.

    Args:
        module: the network; DistributedDataParallel/compile wrappers are unwrapped.
        source: a weight file or a dict: a state dict, or a checkpoint holding one (see :func:`read_state_dict`).
        key: the checkpoint entry holding the state dict (None: ``"model"``, ``"network"``, ``"state_dict"`` or the
            whole dict).
        strict: refuse missing and unexpected keys.
        map_location: device the tensors are loaded to.
        owner: name shown at the start of error messages.

    Returns:
        ``module``, with the weights loaded.

    Raises:
        FileNotFoundError: no file at ``source``.
        ValueError: the weights do not fit the module (names the first differing keys and shapes).
    """
    state = read_state_dict(source, key, map_location, owner=owner)
    target = unwrap_model(module)
    check_state_dict(target, state, strict=strict, source=_describe(source), owner=owner)
    target.load_state_dict(state, strict=False)
    return module
