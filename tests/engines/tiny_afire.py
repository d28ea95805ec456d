"""Tiny AFiRe models and in-memory batches shared by the engine tests."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from monai_afire.engines import (
    AFiRePretrainer,
    FreezePrototypes,
    LearningRateSchedule,
    TeacherEMA,
    WeightDecaySchedule,
    weight_decay_param_groups,
)
from monai_afire.losses import AFiReLoss
from monai_afire.networks import AFiRe, AFiReEncoder

__all__ = ["IMAGE", "tiny_model", "tiny_batches", "tiny_loss", "tiny_trainer"]

IMAGE = 32
PROTOTYPES = 8


def tiny_model(seed: int = 0, hidden: int = 32, lesion_prototype: bool = False) -> AFiRe:
    """A 2-layer ViT on 32x32 images with 8x8 patches (16 tokens) and a 1-block decoder."""
    torch.manual_seed(seed)
    encoder = AFiReEncoder(
        "vit_tiny", img_size=IMAGE, patch_size=8, hidden_size=hidden, num_layers=2, num_heads=2, mlp_dim=2 * hidden
    )
    return AFiRe(
        encoder,
        num_prototypes=PROTOTYPES,
        head_hidden_dim=32,
        head_bottleneck_dim=16,
        decoder_dim=32,
        decoder_depth=1,
        decoder_heads=2,
        lesion_prototype=lesion_prototype,
    )


def tiny_batches(n: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``n`` samples with the SLM keys: a random clean image and one square lesion (4 abnormal tokens)."""
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        clean = torch.rand(1, IMAGE, IMAGE, generator=g) * 0.8
        mask = torch.zeros(1, IMAGE, IMAGE)
        mask[:, 8:24, 8:24] = 0.3
        data.append({"image": (clean + mask).clamp(0, 1), "clean": clean, "lesion_mask": mask})
    return data


def tiny_loss(model: AFiRe) -> AFiReLoss:
    """AFiReLoss sized for ``model``, with the category term exactly when the model has a lesion prototype."""
    return AFiReLoss(model.num_positions, PROTOTYPES, category_weight=1.0 if model.has_lesion_prototype else 0.0)


def tiny_trainer(
    model: AFiRe,
    max_epochs: int = 2,
    batch_size: int = 4,
    handlers: list | None = None,
    n: int = 8,
    loader: DataLoader | None = None,
    **kwargs,
) -> AFiRePretrainer:
    """A trainer with the paper's handlers (schedules, EMA, frozen prototypes) plus ``handlers``."""
    optimizer = torch.optim.AdamW(weight_decay_param_groups(model), lr=1e-3)
    if loader is None:
        loader = DataLoader(tiny_batches(n), batch_size=batch_size, shuffle=False)
    core = [
        LearningRateSchedule(optimizer, 1e-3, warmup_epochs=1),
        WeightDecaySchedule(optimizer),
        FreezePrototypes(model),
        TeacherEMA(model),
    ]
    loss = tiny_loss(model.module if hasattr(model, "module") else model)
    return AFiRePretrainer(
        "cpu", max_epochs, loader, model, optimizer, loss, train_handlers=core + (handlers or []), **kwargs
    )
