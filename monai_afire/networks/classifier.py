"""Multi-label classifier around an AFiRe encoder, for linear probing or fine-tuning."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.networks.layers import trunc_normal_

from monai_afire.utils.deprecation import moved_names

from .encoder import AFiReEncoder
from .pretrained import NO_CONFIG_HINT, load_pretrained_encoder, read_encoder_config, resolve_encoder_config

__all__ = ["AFiReClassifier", "prior_log_odds", "build_classifier"]

POOLINGS = ("cls", "mean")
MODES = ("finetune", "linear_probe")


class AFiReClassifier(nn.Module):
    """A linear classification head on pooled :class:`AFiReEncoder` tokens; returns logits (B, num_classes).

    Args:
        encoder: the (pre-trained) encoder.
        num_classes: number of outputs (one logit per finding for multi-label BCE).
        pooling: ``"cls"`` uses the class token (the encoder needs ``class_token=True``), ``"mean"`` the mean of the
            patch tokens.
        mode: ``"finetune"`` trains everything; ``"linear_probe"`` freezes the encoder (``requires_grad=False``)
            and keeps it in eval mode even when the classifier is put in train mode.
        dropout: dropout before the linear head.
        class_prior: fraction of positive training images per class, each in (0, 1); the head's bias starts at its
            log-odds, so the first predictions match the label prevalence. With a zero bias every rare finding
            starts at probability 0.5 and (with Adam) the drop towards the prevalence is learnt mostly by the head
            weights along the features' shared direction, which makes early scores rank images by global
            intensity, below chance for dense findings. None keeps a zero bias.

    Example::

        model = AFiReClassifier(AFiReEncoder("vit_small", img_size=224), num_classes=14, pooling="mean")
        logits = model(torch.rand(2, 1, 224, 224))  # (2, 14)
    """

    __constants__ = ["encoder_has_encode"]  # TorchScript compiles only the branch of the encoder in use

    def __init__(
        self,
        encoder: AFiReEncoder,
        num_classes: int,
        pooling: str = "mean",
        mode: str = "finetune",
        dropout: float = 0.0,
        class_prior: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"AFiReClassifier: pooling must be one of {POOLINGS}, got {pooling!r}.")
        if mode not in MODES:
            raise ValueError(f"AFiReClassifier: mode must be one of {MODES}, got {mode!r}.")
        if int(num_classes) < 1:
            raise ValueError(f"AFiReClassifier: num_classes must be >= 1, got {num_classes}.")
        if pooling == "cls" and not getattr(encoder, "class_token", False):
            raise ValueError("AFiReClassifier: pooling='cls' needs an encoder built with class_token=True.")
        self.encoder = encoder
        self.encoder_has_encode = callable(getattr(encoder, "encode", None))
        self.num_classes = int(num_classes)
        self.pooling = pooling
        self.mode = mode
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.hidden_size, self.num_classes)
        trunc_normal_(self.head.weight, mean=0.0, std=0.02, a=-2.0, b=2.0)
        nn.init.zeros_(self.head.bias)
        if class_prior is not None:
            with torch.no_grad():
                self.head.bias.copy_(prior_log_odds(class_prior, self.num_classes))
        if mode == "linear_probe":
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> AFiReClassifier:
        """Set train/eval mode; in linear-probe mode the encoder stays in eval mode."""
        super().train(mode)
        if self.mode == "linear_probe":
            self.encoder.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled image features (B, D)."""
        if self.encoder_has_encode:  # AFiReEncoder: one TorchScript-friendly call
            tokens, cls_token = self.encoder.encode(x)
            if self.pooling == "cls":
                if cls_token is None:
                    raise ValueError("AFiReClassifier: pooling='cls' needs an encoder built with class_token=True.")
                return cls_token
            return tokens.mean(dim=1)
        out = self.encoder(x)  # any other token network: (B, L, D), or (tokens, class token)
        if self.pooling == "cls":
            return out[1]
        tokens = out[0] if isinstance(out, tuple) else out
        return tokens.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for images (B, C, *img_size)."""
        return self.head(self.dropout(self.features(x)))


def prior_log_odds(class_prior: Sequence[float] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Log-odds ``log(p / (1 - p))`` of per-class positive fractions, as a float tensor (num_classes,).

    Raises:
        ValueError: ``class_prior`` does not hold ``num_classes`` finite values strictly between 0 and 1.
    """
    prior = torch.as_tensor(class_prior, dtype=torch.float64).reshape(-1)
    if prior.numel() != num_classes:
        raise ValueError(f"class_prior: expected {num_classes} values (one per class), got {prior.numel()}.")
    bad = [float(v) for v in prior if not (math.isfinite(float(v)) and 0.0 < float(v) < 1.0)]
    if bad:
        raise ValueError(
            f"class_prior: expected fractions strictly between 0 and 1 (smooth empty classes), got {bad[:3]}."
        )
    return torch.log(prior / (1.0 - prior)).float()


def _describe(encoder: AFiReEncoder) -> str:
    c = encoder.config
    return (
        f"{c['arch']} (hidden_size={c['hidden_size']}, num_layers={c['num_layers']}, num_heads={c['num_heads']}, "
        f"img_size={c['img_size']}, patch_size={c['patch_size']})"
    )


def build_classifier(
    num_classes: int,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    init: str = "pretrained",
    pooling: str = "mean",
    mode: str = "finetune",
    dropout: float = 0.0,
    class_prior: Sequence[float] | torch.Tensor | None = None,
    encoder_defaults: Mapping[str, Any] | None = None,
    **encoder_kwargs: Any,
) -> AFiReClassifier:
    """Build an :class:`AFiReClassifier`, its encoder initialised from an AFiRe checkpoint or at random.

    The encoder's architecture comes from the settings saved in ``checkpoint`` (files written by monai-afire 0.2 or
    later describe themselves); ``encoder_kwargs`` that are not None override them, and an architecture setting that
    disagrees with the checkpoint's is an error naming both. Without saved settings (random init, or a bare state
    dict) the architecture is ``encoder_defaults`` updated with ``encoder_kwargs``.

    Args:
        num_classes: number of outputs.
        checkpoint: AFiRe training checkpoint, teacher encoder file, AFiRe state dict or encoder state dict (path or
            dict); needed when ``init="pretrained"``. The teacher encoder is loaded (see ``load_pretrained_encoder``).
        init: ``"pretrained"`` or ``"random"``.
        pooling: ``"cls"`` or ``"mean"``; ``"cls"`` turns on the encoder's class token (fresh, as AFiRe pre-trains
            without one, unless the checkpoint holds it).
        mode: ``"finetune"`` or ``"linear_probe"``.
        dropout: dropout before the head.
        class_prior: per-class positive fraction of the training labels (e.g.
            :func:`~monai_afire.apps.label_prevalence`); the head's bias starts at its log-odds. None: zero bias.
        encoder_defaults: architecture used where neither the checkpoint nor ``encoder_kwargs`` says (the bundles pass
            ``{"arch": "vit_base", "img_size": 224, "patch_size": 16}``); None: :class:`AFiReEncoder`'s own defaults.
        encoder_kwargs: arguments of :class:`AFiReEncoder` (``arch``, ``img_size``, ``patch_size``, ...); None
            values mean "from the checkpoint".

    Raises:
        ValueError: unknown ``init``, a missing checkpoint for ``init="pretrained"`` or one given with
            ``init="random"``, settings that disagree with the checkpoint's, or a checkpoint that is not an encoder
            of the configured size.
    """
    if init not in ("pretrained", "random"):
        raise ValueError(f"build_classifier: init must be 'pretrained' or 'random', got {init!r}.")
    if init == "pretrained" and checkpoint is None:
        raise ValueError("build_classifier: init='pretrained' needs a checkpoint (path or state dict).")
    if init == "random" and checkpoint is not None:
        raise ValueError("build_classifier: a checkpoint was given with init='random'; use init='pretrained'.")
    defaults = {} if encoder_defaults is None else encoder_defaults
    kwargs = resolve_encoder_config(checkpoint, defaults=defaults, owner="build_classifier", **encoder_kwargs)
    if pooling == "cls":
        kwargs["class_token"] = True
    encoder = AFiReEncoder(**kwargs)
    if checkpoint is not None:
        where = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "the given state dict"
        try:
            load_pretrained_encoder(checkpoint, encoder, strict=True, ignore_missing=("cls_token",))
        except ValueError as err:
            hint = "" if read_encoder_config(checkpoint) is not None else f" ({NO_CONFIG_HINT})"
            raise ValueError(
                f"build_classifier: {where} is not an encoder of the configured size {_describe(encoder)}{hint}: {err}"
            ) from err
    return AFiReClassifier(encoder, num_classes, pooling=pooling, mode=mode, dropout=dropout, class_prior=class_prior)


__getattr__ = moved_names(__name__, {"layer_decay_param_groups": "monai_afire.optimizers:layer_decay_param_groups"})
