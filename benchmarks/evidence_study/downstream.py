"""Downstream evaluation of one arm / seed, in two stages that never mix.

:func:`select` (validation only): every setting is fitted on the training subset of each label fraction and chosen on
the validation split (linear-probe C for each pooling, attention-probe epoch, k of the k-NN, fine-tuning epoch); the
fitted predictors are returned with their validation scores. :func:`predict_test` applies those frozen predictors to
the test split, once, after the runner has written the choices down and opened the test split.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_afire.apps import (
    POOL_MODES,
    LinearProbe,
    encode_tokens,
    finetune_classifier,
    fit_attention_probe,
    knn_scores,
    pool_tokens,
    predict_scores,
    select_knn_k,
    train_classifier,
    training_prevalence,
)
from monai_afire.metrics import mean_auroc

from .arms import Arm
from .data import DownstreamData, Split
from .presets import Preset

__all__ = ["Selection", "add_finetuning", "pixel_features", "select", "predict_test", "method_key"]


def method_key(method: str, fraction: float, pooling: str | None = None) -> str:
    """Key of one downstream result, e.g. ``linear/mean/0.1`` or ``finetune/1``."""
    return f"{method}/{pooling}/{fraction:g}" if pooling else f"{method}/{fraction:g}"


@dataclass
class Selection:
    """What :func:`select` fitted for one arm / seed, with the validation mean AUROC of each result.

    Attributes:
        arm: arm name.
        seed: pre-training seed.
        val: ``{method_key: validation mean AUROC}``.
        details: ``{method_key: chosen setting}`` (C, k, best epoch).
        predictors: ``{method_key: fitted predictor}`` (a :class:`LinearProbe`, an attention probe, a fine-tuned
            classifier, or the k of a k-NN).
        seconds: wall time per method.
    """

    arm: str
    seed: int
    val: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    predictors: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def pixel_features(images: torch.Tensor, side: int) -> torch.Tensor:
    """Films area-downsampled to ``side`` x ``side`` and flattened (N, side^2)."""
    return F.interpolate(images, size=(side, side), mode="area").flatten(1)


def _frozen(
    sel: Selection,
    feats: dict[str, dict[str, torch.Tensor]],
    y_tr: np.ndarray,
    y_val: np.ndarray,
    fractions: dict[float, np.ndarray],
    preset: Preset,
    seed: int,
) -> None:
    """Linear probe and k-NN for every pooling and fraction."""
    import time

    for pooling, f in feats.items():
        for frac, idx in fractions.items():
            start = time.time()
            key = method_key("linear", frac, pooling)
            probe = LinearProbe(cs=preset.probe_cs, seed=seed).fit(f["train"][idx], y_tr[idx], f["val"], y_val)
            sel.predictors[key], sel.details[key] = probe, {"C": probe.best_c}
            sel.val[key] = mean_auroc(y_val, probe.predict(f["val"]))
            sel.seconds[key] = time.time() - start
            key = method_key("knn", frac, pooling)
            ks = [k for k in preset.knn_ks if k < len(idx)] or [max(1, len(idx) - 1)]
            k, _ = select_knn_k(f["train"][idx], y_tr[idx], f["val"], y_val, ks=ks)
            sel.predictors[key], sel.details[key] = int(k), {"k": int(k)}
            sel.val[key] = mean_auroc(y_val, knn_scores(f["train"][idx], y_tr[idx], f["val"], k=k))


def _train_val(split: Split, idx: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = split.images, torch.as_tensor(split.labels)
    if idx is None:
        return images, labels
    return images[torch.as_tensor(idx)], labels[torch.as_tensor(idx)]


def select(
    arm: Arm,
    seed: int,
    encoder: nn.Module | None,
    data: DownstreamData,
    preset: Preset,
    finetune: bool,
    tokens: dict[str, torch.Tensor] | None = None,
    extra_features: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Selection:
    """Fit and choose every downstream predictor of one arm / seed on train + validation (the test split is not
    used; it is not even reachable before the runner freezes the choices).

    Args:
        arm: the arm.
        seed: its pre-training seed (also the seed of the probes and of fine-tuning).
        encoder: the arm's frozen ViT (None for ``pixels`` and ``densenet``).
        data: the downstream data.
        preset: settings.
        finetune: also fine-tune (encoder arms) / train (DenseNet) at every label fraction.
        tokens: precomputed ``{"train": (N, L, D), "val": (M, L, D)}`` tokens of ``encoder``.
        extra_features: further frozen features per name, ``{name: {"train": (N, F), "val": (M, F)}}`` (e.g. the
            pooled lesion-prototype probability), probed like the pooled tokens.
    """
    import time

    sel = Selection(arm.name, seed)
    fractions = {f: data.fraction_index(f) for f in preset.label_fractions}
    y_tr, y_val = data.train.labels, data.val.labels
    device = torch.device(preset.device)
    if arm.kind == "pixels":
        feats = {"pixels": {s.name: pixel_features(s.images, preset.pixel_side) for s in (data.train, data.val)}}
        _frozen(sel, feats, y_tr, y_val, fractions, preset, seed)
        return sel
    if arm.kind == "densenet":
        if finetune:
            add_finetuning(sel, arm, None, data, preset)
        return sel
    if encoder is None:
        raise ValueError(f"select: arm {arm.name} needs an encoder.")
    if tokens is None:
        tokens = {s.name: encode_tokens(encoder, s.images, device=device) for s in (data.train, data.val)}
    feats = {p: {k: pool_tokens(t, p) for k, t in tokens.items()} for p in POOL_MODES}
    feats.update(extra_features or {})
    _frozen(sel, feats, y_tr, y_val, fractions, preset, seed)
    for frac, idx in fractions.items():
        start = time.time()
        key = method_key("attention", frac)
        probe = fit_attention_probe(
            tokens["train"][torch.as_tensor(idx)],
            y_tr[idx],
            tokens["val"],
            y_val,
            epochs=preset.attention_epochs,
            seed=seed,
            device=device,
        )
        sel.predictors[key] = probe.cpu()
        sel.details[key] = {"best_epoch": getattr(probe, "training_history", {}).get("best_epoch")}
        sel.val[key] = mean_auroc(y_val, _probe_scores(probe, tokens["val"]))
        sel.seconds[key] = time.time() - start
    if finetune:
        add_finetuning(sel, arm, encoder, data, preset)
    return sel


def add_finetuning(sel: Selection, arm: Arm, encoder: nn.Module | None, data: DownstreamData, preset: Preset) -> None:
    """Fine-tune the arm's encoder (or train a DenseNet121 from scratch) at every label fraction, the epoch chosen on
    validation, and add the models and their validation scores to ``sel``."""
    import time

    device = torch.device(preset.device)
    y_tr = data.train.labels
    for frac in preset.label_fractions:
        idx = data.fraction_index(frac)
        start = time.time()
        key = method_key("finetune", frac)
        if arm.kind == "densenet":
            model = _densenet(len(data.classes), y_tr[idx], sel.seed, preset.densenet_image_size)
            model = train_classifier(
                model,
                _train_val(data.train, idx),
                _train_val(data.val),
                epochs=preset.densenet_epochs[frac],
                lr=preset.densenet_lr,
                batch_size=preset.finetune_batch_size,
                weight_decay=preset.finetune_weight_decay,
                seed=sel.seed,
                device=device,
                head=model[-1].class_layers.out,
            )
        else:
            model = finetune_classifier(
                encoder,
                _train_val(data.train, idx),
                _train_val(data.val),
                epochs=preset.finetune_epochs[frac],
                lr=preset.finetune_lr,
                batch_size=preset.finetune_batch_size,
                weight_decay=preset.finetune_weight_decay,
                layer_decay=preset.layer_decay,
                pooling="mean",
                seed=sel.seed,
                device=device,
            )
        _keep_finetuned(sel, key, model, data, device, start)


def _keep_finetuned(
    sel: Selection, key: str, model: nn.Module, data: DownstreamData, device: torch.device, start: float
) -> None:
    import time

    history = getattr(model, "training_history", {})
    sel.predictors[key] = model.cpu()
    sel.details[key] = {"best_epoch": history.get("best_epoch")}
    sel.val[key] = mean_auroc(data.val.labels, predict_scores(model, data.val.images, device=device))
    sel.seconds[key] = time.time() - start


class _AreaResize(nn.Module):
    """Area-downsample images to ``size`` x ``size`` (identity when None)."""

    def __init__(self, size: int | None) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is None or tuple(x.shape[2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="area")


def _densenet(num_classes: int, y_train: np.ndarray, seed: int, image_size: int | None = None) -> nn.Sequential:
    """MONAI's DenseNet121 (one input channel), its head bias at the training prevalence's log-odds, after an area
    downsampling of the films to ``image_size``."""
    from monai.networks.nets import DenseNet121

    from monai_afire.networks.classifier import prior_log_odds

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DenseNet121(spatial_dims=2, in_channels=1, out_channels=num_classes)
    with torch.no_grad():
        net.class_layers.out.bias.copy_(prior_log_odds(training_prevalence(y_train), num_classes))
    return nn.Sequential(_AreaResize(image_size), net)


@torch.no_grad()
def _probe_scores(probe: nn.Module, tokens: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    probe.eval()
    out = [torch.sigmoid(probe(tokens[i : i + batch_size]).float()) for i in range(0, tokens.shape[0], batch_size)]
    return torch.cat(out).numpy()


def predict_test(
    sel: Selection,
    test: Split,
    train: Split,
    fractions: dict[float, np.ndarray],
    pooling: str,
    preset: Preset,
    encoder: nn.Module | None = None,
    train_tokens: torch.Tensor | None = None,
    extra_features: dict[str, dict[str, torch.Tensor]] | None = None,
) -> dict[str, np.ndarray]:
    """Test scores (N, C) of every frozen predictor of ``sel`` that uses the chosen ``pooling`` (frozen probes and
    k-NN), plus the attention probes and the fine-tuned models.

    Args:
        sel: the selection of this arm / seed.
        test: the test split (from :meth:`DownstreamData.test`, i.e. after the choices were frozen).
        train: the training split (the k-NN's neighbours).
        fractions: training indices per label fraction.
        pooling: the pooling chosen on validation for this arm (``pixels`` for the pixel arm).
        preset: settings.
        encoder: the arm's frozen ViT (None for pixels / DenseNet).
        train_tokens: the training tokens of ``encoder`` (recomputed when None).
        extra_features: ``{name: {"train": ..., "test": ...}}``, needed when ``pooling`` is one of them.
    """
    device = torch.device(preset.device)
    out: dict[str, np.ndarray] = {}
    if pooling == "pixels":
        feats = {
            "train": pixel_features(train.images, preset.pixel_side),
            "test": pixel_features(test.images, preset.pixel_side),
        }
        test_tokens = None
    elif encoder is not None:
        test_tokens = encode_tokens(encoder, test.images, device=device)
        if train_tokens is None:
            train_tokens = encode_tokens(encoder, train.images, device=device)
        if extra_features and pooling in extra_features:
            feats = extra_features[pooling]
        else:
            feats = {"train": pool_tokens(train_tokens, pooling), "test": pool_tokens(test_tokens, pooling)}
    else:
        feats, test_tokens = None, None
    for key, predictor in sel.predictors.items():
        method, *rest = key.split("/")
        frac = float(rest[-1])
        if method in ("linear", "knn") and rest[0] != pooling:
            continue
        if method == "linear":
            out[key] = predictor.predict(feats["test"])
        elif method == "knn":
            idx = fractions[frac]
            out[key] = knn_scores(feats["train"][idx], train.labels[idx], feats["test"], k=int(predictor))
        elif method == "attention":
            out[key] = _probe_scores(predictor, test_tokens)
        elif method == "finetune":
            out[key] = predict_scores(predictor, test.images, device=device)
    return out


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode without gradients."""
    out = copy.deepcopy(module).eval()
    out.requires_grad_(False)
    return out


def mean_over(values: Sequence[float]) -> float:
    """Mean ignoring NaN (NaN when empty)."""
    arr = np.asarray([v for v in values if v == v], dtype=np.float64)
    return float(arr.mean()) if arr.size else float("nan")
