"""The AFiRe pre-training engine: a MONAI Trainer whose iteration runs the student, teacher, decoder and AFiReLoss."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.engines import Trainer
from monai.engines.utils import IterationEvents
from torch.optim import Optimizer
from torch.utils.data import DataLoader

__all__ = ["AFiRePretrainer", "AMP_DTYPES", "CLIP_GRAD_MODES", "clip_gradients", "unwrap_model"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: ``"per_tensor"``: each parameter's gradient clipped to the norm on its own (authors'); ``"global"``: the norm of
#: all gradients together (``torch.nn.utils.clip_grad_norm_``)
CLIP_GRAD_MODES = ("per_tensor", "global")


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float, mode: str = "per_tensor") -> torch.Tensor:
    """Clip the gradients of ``parameters`` in place and return the norm of all of them before clipping.

    Args:
        parameters: tensors whose ``.grad`` is clipped (those without a gradient are skipped).
        max_norm: the largest norm allowed.
        mode: ``"per_tensor"`` (the authors'): every gradient with norm ``n > max_norm`` is scaled by
            ``max_norm / (n + 1e-6)`` on its own, so one tensor's large gradient does not shrink the others;
            ``"global"``: all gradients are scaled together so that their joint norm is at most ``max_norm``
            (``torch.nn.utils.clip_grad_norm_``).

    Returns:
        the norm of all gradients together before clipping (a scalar tensor; 0 when there is none).

    Raises:
        ValueError: for an unknown ``mode``.
    """
    if mode not in CLIP_GRAD_MODES:
        raise ValueError(f"clip_gradients: mode must be one of {list(CLIP_GRAD_MODES)}, got {mode!r}.")
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.zeros(())
    if mode == "global":
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params]
    norms = torch.stack(torch._foreach_norm(grads))  # type: ignore[arg-type]
    scale = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # the same factor as clip_grad_norm_ on one tensor
    torch._foreach_mul_(grads, list(scale.to(grads[0].dtype).unbind()))  # type: ignore[arg-type]
    return torch.linalg.vector_norm(norms)


def unwrap_model(network: nn.Module) -> nn.Module:
    """The AFiRe module inside DistributedDataParallel/DataParallel or ``torch.compile`` wrappers."""
    while True:
        if isinstance(network, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            network = network.module
        elif hasattr(network, "_orig_mod"):
            network = network._orig_mod
        else:
            return network


def _as_tensor(x: Any) -> Any:
    return x.as_tensor() if hasattr(x, "as_tensor") else x


class AFiRePretrainer(Trainer):
    """Ignite/MONAI trainer for AFiRe self-supervised pre-training.

    Each iteration reads the lesioned image, the clean image and the lesion mask from the batch (as
    :class:`monai_afire.transforms.RandSyntheticLesiond` writes them), runs ``network(lesioned, clean, mask)``, the
    loss ``loss_function(outputs, clean, mask, replace_prototypes=epoch <= replace_prototypes_epochs)``,
    backpropagates, clips the gradients (:func:`clip_gradients`) and steps the optimiser. It fires MONAI's
    ``IterationEvents`` (FORWARD_COMPLETED, LOSS_COMPLETED, BACKWARD_COMPLETED, MODEL_COMPLETED); the teacher EMA, the
    schedules and the checkpoints are handlers (see :mod:`monai_afire.engines`). ``engine.state.output`` holds
    ``"loss"`` (a detached scalar tensor) and the float components ``"structure"``, ``"category"`` and
    ``"restoration"``.

    Args:
        device: device of the network; batches are moved there.
        max_epochs: epochs to train.
        train_data_loader: yields dicts with ``image_key``, ``clean_key`` and ``mask_key``.
        network: an :class:`monai_afire.networks.AFiRe` (possibly wrapped in DistributedDataParallel).
        optimizer: e.g. AdamW on :func:`monai_afire.engines.weight_decay_param_groups`.
        loss_function: an :class:`monai_afire.losses.AFiReLoss`.
        epoch_length: iterations per epoch; the loader length when None.
        image_key: batch key of the lesioned image.
        clean_key: batch key of the clean image.
        mask_key: batch key of the lesion mask.
        clip_grad_norm: maximum gradient norm (None or <= 0: no clipping); ``engine.state.grad_norm`` holds the
            norm of all gradients together before clipping.
        clip_grad_mode: ``"per_tensor"`` (default, the authors': each parameter tensor clipped to
            ``clip_grad_norm`` on its own) or ``"global"`` (the joint norm of all gradients, as
            ``torch.nn.utils.clip_grad_norm_``; a large term, e.g. the category term at initialisation, then
            shrinks every other parameter's update too).
        replace_prototypes_epochs: epochs during which the prototype state is replaced by the batch mean.
        amp: mixed precision, False, True (= "bf16"), "bf16" or "fp16" (fp16 uses a GradScaler).
        compile: wrap the network with ``torch.compile``.
        compile_kwargs: arguments of ``torch.compile``.
        train_handlers: handlers with ``attach(engine)`` (MONAI convention).
        non_blocking: non-blocking host-to-device copies.
        kwargs: further arguments of :class:`monai.engines.Trainer` (e.g. ``event_names``).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: nn.Module,
        optimizer: Optimizer,
        loss_function: Callable,
        epoch_length: int | None = None,
        image_key: str = "image",
        clean_key: str = "clean",
        mask_key: str = "lesion_mask",
        clip_grad_norm: float | None = 3.0,
        clip_grad_mode: str = "per_tensor",
        replace_prototypes_epochs: int = 1,
        amp: bool | str = False,
        compile: bool = False,
        compile_kwargs: dict | None = None,
        train_handlers: Sequence | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> None:
        if amp is True:
            amp = "bf16"
        if amp and amp not in AMP_DTYPES:
            raise ValueError(f"AFiRePretrainer: amp must be False, True, 'bf16' or 'fp16', got {amp!r}.")
        if int(max_epochs) < 1:
            raise ValueError(f"AFiRePretrainer: max_epochs must be >= 1, got {max_epochs}.")
        if clip_grad_mode not in CLIP_GRAD_MODES:
            raise ValueError(
                f"AFiRePretrainer: clip_grad_mode must be one of {list(CLIP_GRAD_MODES)}, got {clip_grad_mode!r}."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            handlers=train_handlers,
            amp=bool(amp),
            decollate=False,
            **kwargs,
        )
        self.amp_dtype = AMP_DTYPES[amp] if amp else None
        self.compile = bool(compile)
        if self.compile:
            network = torch.compile(network, **(compile_kwargs or {}))  # type: ignore[assignment]
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.image_key, self.clean_key, self.mask_key = image_key, clean_key, mask_key
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_mode = clip_grad_mode
        self.replace_prototypes_epochs = int(replace_prototypes_epochs)
        self.scaler = self._make_scaler()

    @property
    def model(self) -> nn.Module:
        """The unwrapped AFiRe model (no DDP/compile wrapper)."""
        return unwrap_model(self.network)

    def _make_scaler(self) -> torch.amp.GradScaler | None:
        if self.amp_dtype is not torch.float16:
            return None
        return torch.amp.GradScaler(torch.device(self.state.device).type)

    def run(self) -> None:  # type: ignore[override]
        """Run training; a second call continues from the current state (the scaler is kept, unlike MONAI's)."""
        if self.scaler is None:
            self.scaler = self._make_scaler()
        super(Trainer, self).run()

    def _read_batch(self, batchdata: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not isinstance(batchdata, dict):
            raise ValueError(f"AFiRePretrainer: a batch must be a dict, got {type(batchdata).__name__}.")
        missing = [k for k in (self.image_key, self.clean_key, self.mask_key) if k not in batchdata]
        if missing:
            raise ValueError(
                f"AFiRePretrainer: batch lacks the keys {missing} (has {sorted(batchdata)}); add "
                "RandSyntheticLesiond(keys=image_key, clean_key=..., mask_key=...) to the transforms."
            )
        device, nb = self.state.device, self.non_blocking
        return tuple(
            _as_tensor(batchdata[k]).to(device, non_blocking=nb)
            for k in (self.image_key, self.clean_key, self.mask_key)
        )  # type: ignore[return-value]

    def _iteration(self, engine: AFiRePretrainer, batchdata: dict[str, Any]) -> dict:
        """One AFiRe step; returns ``engine.state.output``."""
        if batchdata is None:
            raise ValueError("AFiRePretrainer: the data loader gave no batch.")
        lesioned, clean, mask = engine._read_batch(batchdata)
        replace = engine.state.epoch <= engine.replace_prototypes_epochs
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        device_type = torch.device(engine.state.device).type
        with torch.autocast(device_type, dtype=engine.amp_dtype or torch.float32, enabled=engine.amp_dtype is not None):
            outputs = engine.network(lesioned, clean, mask)
            engine.state.output = {"pred": outputs}
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
            loss, components = engine.loss_function(outputs, clean, mask, replace_prototypes=replace)
        engine.state.output = {"loss": loss, **components}
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        scaler = engine.scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if scaler is not None:
            scaler.unscale_(engine.optimizer)
        if engine.clip_grad_norm is not None and engine.clip_grad_norm > 0:
            params = [p for g in engine.optimizer.param_groups for p in g["params"]]
            engine.state.grad_norm = float(clip_gradients(params, engine.clip_grad_norm, engine.clip_grad_mode))
        if scaler is not None:
            scaler.step(engine.optimizer)
            scaler.update()
        else:
            engine.optimizer.step()
        engine.state.output = {"loss": loss.detach(), **components}
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
