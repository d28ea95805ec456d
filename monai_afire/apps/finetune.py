"""Supervised training of a multi-label classifier on in-memory tensors, with best-validation-epoch selection.

One loop serves every downstream arm of a study: fine-tuning a (pre-trained or random) :class:`AFiReEncoder`
(:func:`finetune_classifier`), training any ``nn.Module`` classifier such as MONAI's ``DenseNet121`` from scratch, and
the attention-pooling probe on frozen tokens (:func:`monai_afire.apps.fit_attention_probe`). The data are tensors
(small downstream sets fit in memory), so no DataLoader, no worker processes and no Ignite engine: the loop is a
few lines, deterministic by seed and cheap enough to run dozens of times on two CPU cores. The bundles keep the
Ignite trainers for full-size runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from monai_afire.metrics import mean_auroc
from monai_afire.networks import AFiReClassifier
from monai_afire.optimizers import layer_decay_param_groups

__all__ = ["finetune_classifier", "train_classifier", "predict_scores", "image_batches", "training_prevalence"]

Batch = torch.Tensor | Mapping[str, Any] | Sequence[Any]


def _plain(x: torch.Tensor) -> torch.Tensor:
    """The tensor without MONAI metadata (a MetaTensor becomes a plain ``torch.Tensor``, no copy)."""
    return x.as_subclass(torch.Tensor) if type(x) is not torch.Tensor else x


def image_batches(
    images: torch.Tensor | np.ndarray | Iterable[Batch], batch_size: int = 64, key: str = "image"
) -> Iterator[torch.Tensor]:
    """Yield image batches (B, C, *spatial) from a tensor or from an iterable of batches.

    Args:
        images: a tensor or array (N, C, *spatial), split into batches of ``batch_size``; or an iterable (e.g. a
            ``DataLoader``) of batches, each a tensor, a dict holding ``key``, or a tuple/list whose first item is
            the images.
        batch_size: batch size when ``images`` is a tensor or array.
        key: the image key of dict batches.

    Raises:
        ValueError: a tensor with fewer than 3 dimensions, a dict batch without ``key``, or a batch of another type.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, torch.Tensor):
        if images.ndim < 3:
            raise ValueError(f"images must be a tensor (N, C, *spatial), got shape {tuple(images.shape)}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        images = _plain(images)
        for start in range(0, images.shape[0], int(batch_size)):
            yield images[start : start + int(batch_size)]
        return
    for i, batch in enumerate(images):
        if isinstance(batch, Mapping):
            if key not in batch:
                raise ValueError(f"images: batch {i} is a dict without the key {key!r} (keys: {sorted(batch)}).")
            batch = batch[key]
        elif isinstance(batch, (tuple, list)):
            batch = batch[0]
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        if not isinstance(batch, torch.Tensor):
            raise ValueError(
                f"images: batch {i} is a {type(batch).__name__}; expected a tensor (B, C, *spatial), a dict with "
                f"{key!r} or a tuple whose first item is the images."
            )
        yield _plain(batch)


def _model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.is_floating_point() else x.float()


def _labels(y: torch.Tensor | np.ndarray, name: str, n: int) -> torch.Tensor:
    """Binary labels (n, C) as a float tensor, or a clear error."""
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else _plain(y)).detach().cpu()
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape (N, C) = ({n}, C) (one row per image), got {tuple(y.shape)}.")
    y = y.double()
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"{name} must be binary (0 or 1); map uncertain or missing labels first.")
    return y.float()


def _split(data: tuple[torch.Tensor, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{name} must be a pair (inputs (N, ...), labels (N, C)), got {type(data).__name__}.")
    x, y = data
    x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name}[0] must be a non-empty tensor (N, ...), got {getattr(x, 'shape', type(x))}.")
    x = _as_float(_plain(x))
    return x, _labels(y, f"{name}[1]", x.shape[0])


def training_prevalence(y: torch.Tensor | np.ndarray, smoothing: float = 0.5) -> list[float]:
    """Per-class ``(positives + smoothing) / (N + 2 * smoothing)`` of binary labels (N, C): strictly inside (0, 1),
    the ``class_prior`` whose log-odds start a classifier's head bias (as the bundles do)."""
    y = _labels(y, "y", len(y))
    return ((y.sum(0) + smoothing) / (y.shape[0] + 2.0 * smoothing)).tolist()


def _warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


@torch.no_grad()
def _logits(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device, amp: bool) -> torch.Tensor:
    out = []
    for batch in image_batches(x, batch_size):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(_as_float(batch).to(device))
        out.append(_plain(logits).float().cpu())
    return torch.cat(out)


def predict_scores(
    model: nn.Module,
    images: torch.Tensor | np.ndarray | Iterable[Batch],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: bool = False,
) -> np.ndarray:
    """Sigmoid scores (N, C) of a classifier, in eval mode and without gradients.

    Args:
        model: maps images (or frozen tokens) (B, ...) to logits (B, C); left in eval mode.
        images: a tensor (N, ...) or an iterable of batches (see :func:`image_batches`).
        batch_size: batch size when ``images`` is a tensor.
        device: where to run; None runs where the model's parameters are.
        amp: bfloat16 autocast (GPU).

    Returns:
        float64 array (N, C); the sigmoid is taken in float64 so confident scores keep their order (float32
        rounds every logit above ~17 to 1.0, which would create ties).
    """
    dev = _model_device(model, device)
    model.to(dev).eval()
    logits = _logits(model, images, batch_size, dev, amp)
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.ndim != 2:
        raise ValueError(f"predict_scores: the model must return logits (B, C), got {tuple(logits.shape)}.")
    return torch.sigmoid(logits.double()).numpy()


def _set_prior_bias(head: nn.Linear, prior: Sequence[float]) -> None:
    if not isinstance(head, nn.Linear) or head.bias is None or head.out_features != len(prior):
        raise ValueError(
            f"head must be the model's final nn.Linear with a bias and {len(prior)} outputs (one per class), "
            f"got {head!r}."
        )
    p = torch.as_tensor(prior, dtype=torch.float64)
    with torch.no_grad():
        head.bias.copy_(torch.log(p / (1.0 - p)).to(head.bias))


def _rng_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def train_classifier(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.05,
    layer_decay: float | None = None,
    warmup_epochs: float = 1.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    head: nn.Linear | None = None,
    max_grad_norm: float | None = None,
    amp: bool = False,
    eval_batch_size: int = 256,
    callback: Callable[[int, nn.Module, float], None] | None = None,
) -> nn.Module:
    """Train a multi-label classifier in place and keep the weights of its best validation epoch.

    AdamW on :func:`~monai_afire.optimizers.layer_decay_param_groups` (no weight decay on biases and norms; with
    ``layer_decay`` the ViT blocks' learning rates decay with depth, a model without ``blocks.<i>.`` parameters gets
    one rate), a per-step linear warm-up then cosine schedule to 0, BCE-with-logits. After each epoch the validation
    mean AUROC (classes with both labels, :func:`~monai_afire.metrics.mean_auroc`) is measured; the weights of the
    first epoch with the highest value are restored at the end. Seeded: the same seed gives the same model (on the
    CPU); the caller's global random state is left untouched.

    Args:
        model: maps inputs (B, ...) to logits (B, C) (a classifier, or a probe on tokens); trained in place.
        train: ``(inputs (N, ...), labels (N, C) in {0, 1})``.
        val: ``(inputs (M, ...), labels (M, C))``, used to choose the epoch; at least one class needs both labels.
        epochs: number of passes over ``train``.
        lr: peak learning rate (of the top layer with ``layer_decay``).
        batch_size: training batch size (a final batch of one sample is dropped, for batch norm).
        weight_decay: AdamW weight decay of the weight matrices.
        layer_decay: layer-wise learning-rate decay in (0, 1]; None for one learning rate.
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        seed: seed of the shuffling, dropout and ``augment``.
        device: where to train; None trains where the model's parameters are. The model is moved there.
        augment: called on each training input batch (B, C, *spatial) on ``device``; returns a tensor of the same
            shape. It may use ``torch``'s global random generator, which is seeded here.
        head: the model's final ``nn.Linear``; when given, its bias starts at the log-odds of the (smoothed)
            training prevalence, as :class:`~monai_afire.networks.AFiReClassifier` does with ``class_prior``
            (e.g. ``model.class_layers.out`` of MONAI's ``DenseNet121``).
        max_grad_norm: clip the global gradient norm to this value; None: no clipping.
        amp: bfloat16 autocast (GPU).
        eval_batch_size: batch size of the validation passes.
        callback: called as ``callback(epoch, model, val_auroc)`` after each epoch's validation (epochs from 0).

    Returns:
        the model with its best epoch's weights, in eval mode. ``model.training_history`` holds ``train_loss`` and
        ``val_auroc`` (one value per epoch), ``best_epoch`` and ``best_val_auroc``.

    Raises:
        ValueError: bad shapes or labels (the argument is named), a validation set without any class having both
            labels, non-positive ``epochs``/``batch_size``/``lr``, or a model whose output is not (B, C).
    """
    x_train, y_train = _split(train, "train")
    x_val, y_val = _split(val, "val")
    if y_val.shape[1] != y_train.shape[1]:
        raise ValueError(f"train labels have {y_train.shape[1]} classes, val labels {y_val.shape[1]}.")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"val inputs {tuple(x_val.shape)} differ in shape from train inputs {tuple(x_train.shape)}.")
    if not bool(((y_val.sum(0) > 0) & (y_val.sum(0) < y_val.shape[0])).any()):
        raise ValueError("val labels have no class with both a positive and a negative sample: no epoch can be chosen.")
    if int(epochs) < 1 or int(batch_size) < 1 or not lr > 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}.")
    dev = _model_device(model, device)
    n = x_train.shape[0]
    batch_size = min(int(batch_size), n)
    steps_per_epoch = n // batch_size + (1 if n % batch_size > 1 else 0)
    total = int(epochs) * steps_per_epoch
    warmup = min(max(0, round(warmup_epochs * steps_per_epoch)), total - 1)
    history: dict[str, Any] = {"train_loss": [], "val_auroc": [], "best_epoch": -1, "best_val_auroc": -math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    loss_fn = nn.BCEWithLogitsLoss()
    with torch.random.fork_rng(devices=_rng_devices(dev)):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model.to(dev)
        if head is not None:
            _set_prior_bias(head, training_prevalence(y_train))
        groups = layer_decay_param_groups(model, lr, weight_decay, 1.0 if layer_decay is None else layer_decay)
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(total, warmup))
        x_dev, y_dev = x_train.to(dev), y_train.to(dev)
        for epoch in range(int(epochs)):
            model.train()
            order = torch.randperm(n, generator=generator)
            losses = []
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size].to(dev)
                xb, yb = x_dev[idx], y_dev[idx]
                if augment is not None:
                    xb = augment(xb)
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                    logits = _plain(model(xb))
                if logits.shape != yb.shape:
                    raise ValueError(
                        f"train_classifier: the model returned {tuple(logits.shape)}, expected logits "
                        f"{tuple(yb.shape)} (batch, classes)."
                    )
                loss = loss_fn(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
            val_auroc = mean_auroc(y_val.numpy(), predict_scores(model, x_val, eval_batch_size, dev, amp))
            history["train_loss"].append(float(np.mean(losses)))
            history["val_auroc"].append(val_auroc)
            if val_auroc > history["best_val_auroc"]:
                history["best_epoch"], history["best_val_auroc"] = epoch, val_auroc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if callback is not None:
                callback(epoch, model, val_auroc)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.training_history = history
    return model


class _TokenEncoder(nn.Module):
    """Gives a token network (images -> (B, L, D)) the ``hidden_size`` attribute :class:`AFiReClassifier` reads."""

    def __init__(self, network: nn.Module, hidden_size: int) -> None:
        super().__init__()
        self.network = network
        self.hidden_size = int(hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def _token_width(encoder: nn.Module, sample: torch.Tensor) -> int:
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(sample)
    encoder.train(was_training)
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.ndim != 3:
        raise ValueError(
            f"finetune_classifier: the encoder must map images to tokens (B, L, D), got {tuple(out.shape)}; train a "
            "classifier that returns logits with train_classifier instead."
        )
    return int(out.shape[-1])


def finetune_classifier(
    encoder: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.05,
    layer_decay: float | None = 0.75,
    pooling: str = "mean",
    seed: int = 0,
    device: str | torch.device | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dropout: float = 0.0,
    freeze_encoder: bool = False,
    **train_kwargs: Any,
) -> nn.Module:
    """Fine-tune a copy of an encoder with a linear head on pooled tokens; the input encoder is left unchanged.

    The classifier is an :class:`~monai_afire.networks.AFiReClassifier` around a deep copy of ``encoder`` (an
    :class:`~monai_afire.networks.AFiReEncoder`, pre-trained or random, or any network that maps images to tokens
    (B, L, D) or a tuple whose first item they are), its head bias at the log-odds of the smoothed training
    prevalence; it is trained by :func:`train_classifier` with layer-wise learning-rate decay.

    Args:
        encoder: the encoder to start from (copied).
        train: ``(images (N, C, *spatial), labels (N, num_classes))``.
        val: ``(images, labels)`` choosing the epoch.
        epochs: training epochs.
        lr: peak learning rate of the head and the last block.
        batch_size: training batch size.
        weight_decay: AdamW weight decay.
        layer_decay: layer-wise learning-rate decay of the ViT blocks; None or 1 for one rate.
        pooling: ``"mean"`` (patch tokens) or ``"cls"`` (an encoder with a class token).
        seed: seed of the head's initialisation and of the training.
        device: where to train (None: where the encoder's parameters are).
        augment: batch augmentation, see :func:`train_classifier`.
        dropout: dropout before the head.
        freeze_encoder: train the head only (``AFiReClassifier`` ``mode="linear_probe"``).
        train_kwargs: further arguments of :func:`train_classifier` (``warmup_epochs``, ``max_grad_norm``, ``amp``,
            ``callback``, ...).

    Returns:
        the classifier with the weights of its best validation epoch, in eval mode (see :func:`train_classifier`).
    """
    x_train, y_train = _split(train, "train")
    net = copy.deepcopy(encoder)
    if not hasattr(net, "hidden_size"):
        dev = _model_device(net, device)
        net = _TokenEncoder(net.to(dev), _token_width(net.to(dev), x_train[:2].to(dev)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AFiReClassifier(
            net,
            y_train.shape[1],
            pooling=pooling,
            mode="linear_probe" if freeze_encoder else "finetune",
            dropout=dropout,
            class_prior=training_prevalence(y_train),
        )
    return train_classifier(
        model,
        (x_train, y_train),
        val,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        seed=seed,
        device=device,
        augment=augment,
        **train_kwargs,
    )
