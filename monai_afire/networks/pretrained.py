"""Loading AFiRe pre-training weights: the whole AFiRe model, or its teacher encoder into a downstream encoder.

Weight files written by monai-afire describe themselves: next to the weights they hold the encoder's settings
(:attr:`AFiReEncoder.config <monai_afire.networks.AFiReEncoder>`, plain numbers and strings under
``"encoder_config"``), so :func:`load_pretrained_encoder` can build the right encoder without being told its size.
Bare state dicts (older files, other tools) still load into an encoder that the caller builds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, overload

import torch
import torch.nn as nn

from monai_afire.utils.state_dict import check_state_dict, read_state_dict
from monai_afire.utils.wrappers import unwrap_model

from .encoder import AFiReEncoder

__all__ = [
    "ARCHITECTURE_KEYS",
    "checkpoint_has_lesion_prototype",
    "ENCODER_CONFIG_KEY",
    "EncoderConfigState",
    "encoder_checkpoint",
    "encoder_config",
    "extract_encoder_state_dict",
    "load_afire_checkpoint",
    "load_pretrained_encoder",
    "read_encoder_config",
    "resolve_encoder_config",
    "input_size",
]

#: the state-dict key of the student's lesion prototype (only in models built with ``lesion_prototype=True``)
LESION_PROTOTYPE_KEY = "student.head.lesion_prototype"

#: entry of a weight file (pre-training checkpoint, teacher encoder file, classifier config JSON) that holds the
#: encoder's settings.
ENCODER_CONFIG_KEY = "encoder_config"

#: settings of :class:`AFiReEncoder` that decide the shape or the computation of its weights. A setting given
#: explicitly must agree with the one saved with the weights; the others (``class_token``, ``dropout_rate``) may
#: differ (a fresh class token, another dropout when fine-tuning).
ARCHITECTURE_KEYS = (
    "arch",
    "img_size",
    "in_channels",
    "spatial_dims",
    "patch_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "mlp_dim",
)

#: the same settings as the bundles' command-line names (``image_size`` is the encoder's ``img_size``), for messages.
_FLAG_NAMES = {"img_size": "image_size"}

NO_CONFIG_HINT = (
    "it holds weights without the encoder's settings (a bare state dict, or a file written before monai-afire 0.2), "
    "so the encoder's size cannot be known; build the encoder it was trained with and pass it, e.g. "
    "load_pretrained_encoder(path, AFiReEncoder('vit_base', img_size=224, patch_size=16)), or give the bundle the "
    "settings it was trained with (--arch, --image_size, --patch_size, --hidden_size, --num_layers, --num_heads, "
    "--mlp_dim)"
)


def encoder_config(encoder: nn.Module) -> dict[str, Any]:
    """The settings of an :class:`AFiReEncoder` (its ``config``) as plain JSON-like values (tuples become lists), the
    form saved in weight files; ``AFiReEncoder(**encoder_config(e))`` builds the same architecture."""
    config = getattr(encoder, "config", None)
    if not isinstance(config, Mapping):
        raise ValueError(f"encoder_config: {type(encoder).__name__} has no AFiReEncoder config.")
    return {str(k): list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def encoder_checkpoint(encoder: nn.Module) -> dict[str, Any]:
    """A self-describing weight file's content: ``{"model": state dict, "encoder_config": settings}``.

    Saved with ``torch.save`` it loads with ``weights_only=True``, into :func:`load_pretrained_encoder` (with or
    without an encoder) and into ``python -m monai.bundle ckpt_export ... --key_in_ckpt model``.
    """
    return {"model": encoder.state_dict(), ENCODER_CONFIG_KEY: encoder_config(encoder)}


class EncoderConfigState:
    """The encoder settings of an AFiRe model as a checkpoint entry: an object with ``state_dict`` (the settings)
    and ``load_state_dict`` (checks that a resumed checkpoint was trained with the same settings), for Ignite's
    :class:`~ignite.handlers.Checkpoint`.

    Args:
        model: an AFiRe model (its teacher encoder is described) or an :class:`AFiReEncoder`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def _encoder(self) -> nn.Module:
        model = unwrap_model(self.model)
        return model.teacher_encoder() if hasattr(model, "teacher_encoder") else model

    def state_dict(self) -> dict[str, Any]:
        """The encoder's settings (see :func:`encoder_config`)."""
        return encoder_config(self._encoder())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Check the saved settings against the model's.

        Raises:
            RuntimeError: an architecture setting differs (names each, saved and current).
        """
        own = self.state_dict()
        differ = [
            f"{k}: checkpoint {_normal(k, state[k], state)!r}, this run {_normal(k, own[k], own)!r}"
            for k in ARCHITECTURE_KEYS
            if k in state and k in own and _normal(k, state[k], state) != _normal(k, own[k], own)
        ]
        if differ:
            raise RuntimeError(f"the checkpoint was trained with another encoder: {'; '.join(differ)}.")


def _normal(key: str, value: Any, config: Mapping[str, Any]) -> Any:
    """A setting in a comparable form (sizes as tuples over every spatial axis)."""
    if key in ("img_size", "patch_size"):
        dims = int(config.get("spatial_dims", 2) or 2)
        if isinstance(value, (int, float)):
            return (int(value),) * dims
        return tuple(int(v) for v in value)
    return value


def input_size(config: Mapping[str, Any]) -> int:
    """The side S of the (S x S) images an encoder of ``config`` takes (``img_size``, an int or equal per-axis sizes).

    Raises:
        ValueError: the sizes differ per axis (radiograph preparation makes square images).
    """
    size = config.get("img_size", 224)
    sizes = {int(size)} if isinstance(size, (int, float)) else {int(s) for s in size}
    if len(sizes) != 1:
        raise ValueError(f"input_size: the encoder takes {list(size)}, expected the same size on every axis.")
    return sizes.pop()


def _load_file(source: str | os.PathLike | Mapping[str, Any], owner: str) -> Mapping[str, Any]:
    """The top-level dict of a weight file (read with ``weights_only=True`` on the CPU) or the given dict."""
    if isinstance(source, Mapping):
        return source
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{owner}: no weight file at {path!r}; train first or pass its path.")
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
    else:
        try:  # memory-mapped: reading the settings of a large checkpoint does not read its tensors
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files in the legacy (non-zip) format cannot be memory-mapped
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{owner}: {path!r} holds a {type(loaded).__name__}, expected a dict.")
    return loaded


def read_encoder_config(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any] | None:
    """The encoder settings saved in a weight file, or None when it holds none (a bare state dict).

    Args:
        source: a pre-training checkpoint, a teacher encoder file (``torch.save`` files), a classifier's
            ``model_config.json``, or an already loaded dict.

    Raises:
        FileNotFoundError: no file at ``source``.
    """
    config = _load_file(source, "read_encoder_config").get(ENCODER_CONFIG_KEY)
    return dict(config) if isinstance(config, Mapping) else None


def resolve_encoder_config(
    source: str | os.PathLike | Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
    owner: str = "resolve_encoder_config",
    **settings: Any,
) -> dict[str, Any]:
    """The :class:`AFiReEncoder` arguments for a run: the settings saved with the weights, else ``defaults``, with the
    settings given explicitly (not None) on top.

    Args:
        source: a weight file (or loaded dict) whose saved settings describe the encoder; None for none.
        defaults: settings used when ``source`` is None or holds no settings (e.g. ``{"arch": "vit_base"}``).
        owner: name at the start of error messages.
        settings: explicit settings (``AFiReEncoder`` argument names); None means "not given".

    Returns:
        keyword arguments of :class:`AFiReEncoder`.

    Raises:
        ValueError: an explicit architecture setting (:data:`ARCHITECTURE_KEYS`) disagrees with the saved one; the
            message names both.
    """
    given = {k: v for k, v in settings.items() if v is not None}
    saved = read_encoder_config(source) if source is not None else None
    if saved is None:
        return {**dict(defaults or {}), **given}
    where = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else "the given checkpoint"
    conflicts = [
        f"{_FLAG_NAMES.get(k, k)}={given[k]!r} but {where} was trained with {_FLAG_NAMES.get(k, k)}={saved[k]!r}"
        for k in ARCHITECTURE_KEYS
        if k in given and k in saved and _normal(k, given[k], saved) != _normal(k, saved[k], saved)
    ]
    if conflicts:
        raise ValueError(
            f"{owner}: {'; '.join(conflicts)}. Leave these settings out (the checkpoint's are used) or pass a "
            "checkpoint of that architecture."
        )
    return {**saved, **given}

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


@overload
def load_pretrained_encoder(
    path_or_state_dict: str | os.PathLike | Mapping[str, object],
    encoder: None = None,
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
) -> AFiReEncoder: ...


@overload
def load_pretrained_encoder(
    path_or_state_dict: str | os.PathLike | Mapping[str, object],
    encoder: nn.Module,
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
) -> tuple[list[str], list[str]]: ...


def load_pretrained_encoder(
    path_or_state_dict: str | os.PathLike | Mapping[str, object],
    encoder: nn.Module | None = None,
    strict: bool = True,
    ignore_missing: Sequence[str] = (),
) -> AFiReEncoder | tuple[list[str], list[str]]:
    """Load AFiRe pre-trained weights (the teacher encoder), into ``encoder`` or into a new encoder built from the
    settings saved in the file.

    Example::

        encoder = load_pretrained_encoder("outputs/demo/models/teacher_encoder.pt")  # the demo's 96-wide ViT
        missing, unexpected = load_pretrained_encoder(path, AFiReEncoder("vit_small", img_size=224))

    Args:
        path_or_state_dict: a file saved with ``torch.save`` (read with ``weights_only=True`` onto the CPU), or an
            already loaded dict; see :func:`extract_encoder_state_dict` for the layouts understood.
        encoder: the downstream :class:`~monai_afire.networks.AFiReEncoder` (same architecture as pre-trained); None
            builds ``AFiReEncoder(**saved settings)``, which needs a file written by monai-afire 0.2 or later.
        strict: raise when keys are missing or unexpected; with False they are only returned.
        ignore_missing: encoder keys that may be missing (e.g. a fresh ``cls_token``).

    Returns:
        without ``encoder``: the new encoder, weights loaded; with ``encoder``: (missing_keys, unexpected_keys) of
        ``encoder``, without those of ``ignore_missing``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: no encoder weights were found, a weight's shape differs (a different architecture), with
            ``strict`` keys are missing or unexpected (see :func:`monai_afire.utils.check_state_dict`), or no
            ``encoder`` was given and the file does not say which encoder it holds.
    """
    owner = "load_pretrained_encoder"
    source = "the given state dict"
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = repr(os.fspath(path_or_state_dict))
    checkpoint = _load_file(path_or_state_dict, owner)
    build = encoder is None
    if build:
        config = read_encoder_config(checkpoint)
        if config is None:
            raise ValueError(f"{owner}: {source}: {NO_CONFIG_HINT}.")
        encoder = AFiReEncoder(**config)
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
    if build:
        return encoder
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
