"""The AFiRe pre-training engine: a MONAI Trainer whose iteration runs the student, teacher, decoder and AFiReLoss."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn
from ignite.engine import Events
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, PrepareBatch
from monai.inferers import Inferer, SimpleInferer
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from monai_afire.utils.wrappers import unwrap_model

__all__ = ["AFiRePrepareBatch", "AFiRePretrainer", "AMP_DTYPES", "CLIP_GRAD_MODES", "clip_gradients"]

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


def _as_tensor(x: Any) -> Any:
    return x.as_tensor() if hasattr(x, "as_tensor") else x


class AFiRePrepareBatch(PrepareBatch):
    """The ``prepare_batch`` of :class:`AFiRePretrainer` (MONAI's :class:`~monai.engines.utils.PrepareBatch`).

    From a batch dict (as :class:`monai_afire.transforms.RandSyntheticLesiond` writes it) it returns, as plain tensors
    on ``device``: the lesioned image (the network's input), the clean image (the target), and the network's further
    arguments ``(clean, lesion_mask)``, so that the inferer calls ``network(lesioned, clean, lesion_mask)``.

    Args:
        image_key: batch key of the lesioned image.
        clean_key: batch key of the clean image.
        mask_key: batch key of the lesion mask.
    """

    def __init__(self, image_key: str = "image", clean_key: str = "clean", mask_key: str = "lesion_mask") -> None:
        self.keys = (image_key, clean_key, mask_key)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        """``(lesioned, clean, (clean, lesion_mask), {})``; ``kwargs`` go to ``Tensor.to``."""
        if not isinstance(batchdata, dict):
            raise ValueError(f"AFiRePretrainer: a batch must be a dict, got {type(batchdata).__name__}.")
        missing = [k for k in self.keys if k not in batchdata]
        if missing:
            raise ValueError(
                f"AFiRePretrainer: batch lacks the keys {missing} (has {sorted(batchdata)}); add "
                "RandSyntheticLesiond(keys=image_key, clean_key=..., mask_key=...) to the transforms."
            )
        lesioned, clean, mask = (
            _as_tensor(batchdata[k]).to(device, non_blocking=non_blocking, **kwargs) for k in self.keys
        )
        return lesioned, clean, (clean, mask), {}


class AFiRePretrainer(Trainer):
    """Ignite/MONAI trainer for AFiRe self-supervised pre-training.

    As MONAI's ``SupervisedTrainer`` does, each iteration reads the batch with ``prepare_batch`` (by default
    :class:`AFiRePrepareBatch`: lesioned image, clean image, lesion mask), runs the network through the ``inferer``
    (``inferer(lesioned, network, clean, mask)``; :class:`~monai.inferers.SimpleInferer` by default), computes the
    loss ``loss_function(outputs, clean, mask, replace_prototypes=epoch <= replace_prototypes_epochs)``,
    backpropagates, clips the gradients (:func:`clip_gradients`) and steps the optimiser, under autocast when ``amp``
    is set. It fires MONAI's ``IterationEvents`` (FORWARD_COMPLETED, LOSS_COMPLETED, BACKWARD_COMPLETED,
    MODEL_COMPLETED); the teacher EMA, the schedules, the frozen prototypes and the checkpoints are handlers (see
    :mod:`monai_afire.handlers`).
    ``engine.state.output`` holds ``"loss"`` (a detached scalar tensor) and the float components ``"structure"``,
    ``"category"`` and ``"restoration"``.

    Args:
        device: device of the network; batches are moved there.
        max_epochs: epochs to train.
        train_data_loader: yields dicts with ``image_key``, ``clean_key`` and ``mask_key``.
        network: an :class:`monai_afire.networks.AFiRe` (possibly wrapped in DistributedDataParallel).
        optimizer: e.g. AdamW on :func:`monai_afire.optimizers.weight_decay_param_groups`.
        loss_function: an :class:`monai_afire.losses.AFiReLoss`.
        epoch_length: iterations per epoch; the loader length when None.
        image_key: batch key of the lesioned image (for the default ``prepare_batch``).
        clean_key: batch key of the clean image (for the default ``prepare_batch``).
        mask_key: batch key of the lesion mask (for the default ``prepare_batch``).
        clip_grad_norm: maximum gradient norm (None or <= 0: no clipping); ``engine.state.grad_norm`` holds the
            norm of all gradients together before clipping.
        clip_grad_mode: ``"per_tensor"`` (default, the authors': each parameter tensor clipped to
            ``clip_grad_norm`` on its own) or ``"global"`` (the joint norm of all gradients, as
            ``torch.nn.utils.clip_grad_norm_``; a large term, e.g. the category term at initialisation, then
            shrinks every other parameter's update too).
        replace_prototypes_epochs: epochs during which the loss replaces its prototype state by the batch mean of the
            teacher logits instead of averaging it in (1 in the paper).
        amp: mixed precision on any device, False, True (= "bf16"), "bf16" or "fp16" (fp16 uses a
            ``torch.amp.GradScaler``, kept across calls of ``run``). MONAI's own CUDA-only ``amp`` path is not used:
            the base class gets ``amp=False``.
        compile: wrap the network with ``torch.compile``.
        compile_kwargs: arguments of ``torch.compile``.
        train_handlers: handlers with ``attach(engine)`` (MONAI convention).
        non_blocking: non-blocking host-to-device copies.
        prepare_batch: MONAI-style ``prepare_batch(batchdata, device, non_blocking, **to_kwargs)`` returning
            ``(lesioned, clean, args, kwargs)``, the network's further arguments ``args`` ending with the lesion mask
            (the loss gets ``clean`` and that mask); :class:`AFiRePrepareBatch` of the three keys when None.
        inferer: runs ``network(inputs, *args, **kwargs)``; :class:`~monai.inferers.SimpleInferer` when None.
        kwargs: further arguments of :class:`monai.engines.Trainer` (e.g. ``event_names``, ``to_kwargs``).
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
        prepare_batch: Callable | None = None,
        inferer: Inferer | None = None,
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
            prepare_batch=AFiRePrepareBatch(image_key, clean_key, mask_key) if prepare_batch is None else prepare_batch,
            amp=False,
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
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_mode = clip_grad_mode
        self.replace_prototypes_epochs = int(replace_prototypes_epochs)
        self.grad_scaler = self._make_scaler()
        # before the handlers, so that a checkpoint resumed at STARTED loads into this trainer's scaler
        self.add_event_handler(Events.STARTED, self._use_grad_scaler)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    @property
    def model(self) -> nn.Module:
        """The unwrapped AFiRe model (no DDP/compile wrapper)."""
        return unwrap_model(self.network)

    def _make_scaler(self) -> torch.amp.GradScaler | None:
        if self.amp_dtype is not torch.float16:
            return None
        return torch.amp.GradScaler(torch.device(self.state.device).type)

    @staticmethod
    def _use_grad_scaler(engine: AFiRePretrainer) -> None:
        # monai's Trainer.run sets ``scaler`` for its CUDA-only amp path (None here); use this trainer's own
        engine.scaler = engine.grad_scaler

    def _iteration(self, engine: AFiRePretrainer, batchdata: dict[str, Any]) -> dict:
        """One AFiRe step; returns ``engine.state.output``."""
        if batchdata is None:
            raise ValueError("AFiRePretrainer: the data loader gave no batch.")
        lesioned, clean, args, kwargs = engine.prepare_batch(
            batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
        )
        mask = args[-1]  # the network's last further argument is the lesion mask (see AFiRePrepareBatch)
        replace = engine.state.epoch <= engine.replace_prototypes_epochs
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        device_type = torch.device(engine.state.device).type
        with torch.autocast(device_type, dtype=engine.amp_dtype or torch.float32, enabled=engine.amp_dtype is not None):
            outputs = engine.inferer(lesioned, engine.network, *args, **kwargs)
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
