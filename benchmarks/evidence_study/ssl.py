"""The two self-supervised baselines on the study's ViT, and the plain training loop they share.

- :class:`MaskedAutoencoder`: MAE (He et al. 2022) on :class:`~monai_afire.networks.AFiReEncoder`: 75% of the patch
  tokens (after the patch embedding and its sin-cos position embedding) are dropped at random per film; the encoder's
  blocks see the visible 25% only; a light decoder (:class:`~monai_afire.networks.AnomalyRemovalDecoder`: visible
  tokens projected, masked positions filled by learnt per-position mask tokens, sin-cos positions, transformer blocks,
  linear to pixels) restores the film; the loss is the MSE on the masked patches ([0, 1] pixels).
- :class:`GlobalDINO`: a global DINO baseline (Caron et al. 2021, with SwAV/DINOv2's Sinkhorn centring): the same
  encoder as student, an EMA teacher, one prototype head on the mean of the patch tokens, two views per film
  (:func:`dino_views`), targets from Sinkhorn-Knopp on the teacher's logits over the batch and a queue of the
  teacher's projections of the last batches (SwAV's small-batch fix), cross-entropy of the student's softmax
  (temperature 0.1) on the other view's target.

Both are trained by :func:`train_ssl` with the bundle's optimiser recipe: AdamW on
:func:`~monai_afire.optimizers.weight_decay_param_groups`, learning rate ``base_lr * batch / 256`` with linear warm-up
and cosine to 1e-6, weight decay cosine 0.04 -> 0.4, gradient clipping at 3.0, teacher momentum cosine to 1.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_afire.handlers import scaled_learning_rate
from monai_afire.handlers.schedules import cosine_value
from monai_afire.losses import sinkhorn_knopp
from monai_afire.networks import AFiReEncoder, AnomalyRemovalDecoder
from monai_afire.optimizers import weight_decay_param_groups

__all__ = ["MaskedAutoencoder", "GlobalDINO", "dino_views", "train_ssl", "seeded_encoder"]


class MaskedAutoencoder(nn.Module):
    """MAE objective on an :class:`AFiReEncoder` (see the module docstring).

    Args:
        encoder: the ViT (no class token).
        decoder_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_heads: decoder heads.
        mask_ratio: fraction of tokens masked.
    """

    def __init__(
        self,
        encoder: AFiReEncoder,
        decoder_dim: int = 64,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio: float = 0.75,
    ) -> None:
        super().__init__()
        if encoder.class_token:
            raise ValueError("MaskedAutoencoder: use an encoder without a class token.")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"MaskedAutoencoder: mask_ratio must be in (0, 1), got {mask_ratio}.")
        self.encoder = encoder
        self.mask_ratio = float(mask_ratio)
        self.num_keep = max(1, int(round(encoder.num_positions * (1.0 - mask_ratio))))
        self.decoder = AnomalyRemovalDecoder(
            encoder.grid_size,
            encoder.patch_size,
            encoder.config["in_channels"],
            encoder.hidden_size,
            decoder_dim,
            decoder_depth,
            decoder_heads,
        )

    def random_keep(self, batch: int, device: torch.device) -> torch.Tensor:
        """Indices (B, num_keep) of the visible tokens, drawn independently per film."""
        noise = torch.rand(batch, self.encoder.num_positions, device=device)
        return noise.argsort(dim=1)[:, : self.num_keep]

    def encode_visible(self, images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encoder tokens (B, K, D) of the visible positions ``keep`` (B, K) only."""
        tokens = self.encoder.patch_embedding(images)
        visible = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        for block in self.encoder.blocks:
            visible = block(visible)
        return self.encoder.norm(visible)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Restored images (like ``images``) and the mask (B, L) bool, True where the token was hidden."""
        b = images.shape[0]
        keep = self.random_keep(b, images.device) if keep is None else keep
        visible = self.encode_visible(images, keep)
        full = visible.new_zeros(b, self.encoder.num_positions, visible.shape[-1])
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, visible.shape[-1]), visible)
        masked = torch.ones(b, self.encoder.num_positions, dtype=torch.bool, device=images.device)
        masked = masked.scatter(1, keep, False)
        return self.decoder(full, masked), masked

    def loss(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error over the pixels of the masked patches."""
        restored, masked = self(images)
        patch = self.encoder.patch_size
        pool = F.avg_pool2d if images.ndim == 4 else F.avg_pool3d
        per_patch = pool((restored - images).pow(2).mean(1, keepdim=True), patch, patch).flatten(1)  # (B, L)
        loss = (per_patch * masked).sum() / masked.sum().clamp_min(1)
        return loss, {"restoration": float(loss.detach())}


class _GlobalBranch(nn.Module):
    def __init__(self, encoder: AFiReEncoder, head: nn.Module, prototypes: nn.Parameter) -> None:
        super().__init__()
        self.encoder, self.head, self.prototypes = encoder, head, prototypes

    def project(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised projection (B, bottleneck) of the mean patch token."""
        out = self.encoder(images)
        pooled = (out[0] if isinstance(out, tuple) else out).mean(1)
        return F.normalize(self.head(pooled), dim=-1)

    def scores(self, u: torch.Tensor) -> torch.Tensor:
        """Cosine scores (B, K) of projections against the unit prototypes."""
        return u @ F.normalize(self.prototypes, dim=-1).t()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scores(self.project(images))


class GlobalDINO(nn.Module):
    """Global DINO with Sinkhorn centring on the mean patch token (see the module docstring).

    Args:
        encoder: the student's ViT; the teacher gets a copy.
        num_prototypes: prototypes of the single head.
        hidden_dim: head MLP width.
        bottleneck_dim: normalised projection width.
        student_temperature: student softmax temperature.
        epsilon: Sinkhorn temperature of the teacher targets.
        sinkhorn_iterations: Sinkhorn rounds.
        queue_size: teacher projections of past batches kept for the Sinkhorn equipartition (SwAV's queue): with
            a batch smaller than the number of prototypes, equipartition within one batch forces near-uniform
            targets and nothing is learnt (the loss stays at log K). 0 disables it.
    """

    def __init__(
        self,
        encoder: AFiReEncoder,
        num_prototypes: int = 64,
        hidden_dim: int = 256,
        bottleneck_dim: int = 64,
        student_temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_size: int = 512,
    ) -> None:
        super().__init__()
        head = nn.Sequential(
            nn.Linear(encoder.hidden_size, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        prototypes = nn.Parameter(F.normalize(torch.randn(num_prototypes, bottleneck_dim), dim=-1))
        self.student = _GlobalBranch(encoder, head, prototypes)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.student_temperature = float(student_temperature)
        self.epsilon = float(epsilon)
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.register_buffer("queue", torch.zeros(int(queue_size), bottleneck_dim))
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def targets(self, u: torch.Tensor) -> torch.Tensor:
        """Sinkhorn targets (B, K) of teacher projections ``u``, equipartitioned together with the queue once full."""
        size = self.queue.shape[0]
        rows = torch.cat([self.queue, u]) if size and int(self.queue_count) >= size else u
        return sinkhorn_knopp(self.teacher.scores(rows), self.epsilon, self.sinkhorn_iterations)[-u.shape[0] :]

    @torch.no_grad()
    def enqueue(self, u: torch.Tensor) -> None:
        """Push projections into the queue (oldest out)."""
        size = self.queue.shape[0]
        if size:
            self.queue.copy_(torch.cat([self.queue, u.float()])[-size:])
            self.queue_count += u.shape[0]

    def loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Symmetric cross-view loss: the Sinkhorn target of one view's teacher for the other view's student."""
        self.teacher.train()  # batch statistics in the head's BatchNorm (no gradient, running stats unused)
        with torch.no_grad():
            projections = [self.teacher.project(v).float() for v in (view_a, view_b)]
            targets = [self.targets(u) for u in projections]
            self.enqueue(projections[0])
        log_p = [F.log_softmax(self.student(v) / self.student_temperature, dim=-1) for v in (view_a, view_b)]
        loss = -0.5 * ((targets[0] * log_p[1]).sum(-1).mean() + (targets[1] * log_p[0]).sum(-1).mean())
        return loss, {"dino": float(loss.detach())}

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher <- momentum * teacher + (1 - momentum) * student."""
        for t, s in zip(self.teacher.parameters(), self.student.parameters()):
            t.lerp_(s.detach(), 1.0 - momentum)


def dino_views(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random view per film: a mild random resized crop (area 60-100%, aspect 3/4-4/3, rotation +-5 degrees),
    then gamma (x^exp(U(-0.3, 0.3))), contrast (U(0.8, 1.2)) and brightness (U(-0.05, 0.05)) changes and Gaussian
    noise (sigma U(0, 0.03)); values clipped to [0, 1]. No synthetic lesions: a view pair that differs by a lesion
    would teach invariance to lesions, the opposite of what the findings need."""
    b = images.shape[0]

    def u(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator)

    area, log_ratio = u(0.6, 1.0), u(math.log(3 / 4), math.log(4 / 3))
    sx, sy = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1), torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1)
    tx, ty = (1 - sx) * u(-1, 1), (1 - sy) * u(-1, 1)
    angle = torch.deg2rad(u(-5, 5))
    theta = torch.stack(
        [
            torch.stack([sx * torch.cos(angle), -sy * torch.sin(angle), tx], -1),
            torch.stack([sx * torch.sin(angle), sy * torch.cos(angle), ty], -1),
        ],
        1,
    ).to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    shape = (b,) + (1,) * (images.ndim - 1)
    out = out.clamp(0, 1) ** torch.exp(u(-0.3, 0.3)).view(shape).to(images)
    mean = out.mean(dim=tuple(range(1, images.ndim)), keepdim=True)
    out = (out - mean) * u(0.8, 1.2).view(shape).to(images) + mean + u(-0.05, 0.05).view(shape).to(images)
    noise = torch.randn(out.shape, generator=generator).to(images) * u(0.0, 0.03).view(shape).to(images)
    return (out + noise).clamp(0, 1)


def train_ssl(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, dict[str, float]]],
    images: torch.Tensor,
    *,
    image_steps: int,
    batch_size: int,
    base_lr: float,
    warmup_steps: int,
    seed: int,
    weight_decay: tuple[float, float] = (0.04, 0.4),
    clip_grad_norm: float = 3.0,
    teacher_momentum: float | None = None,
    device: str | torch.device = "cpu",
    log_every: int = 50,
    amp: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` for ``image_steps // batch_size`` steps on shuffled passes over ``images``.

    Args:
        model: the module (its ``update_teacher(m)`` is called after each step when ``teacher_momentum`` is set).
        loss_fn: ``(batch, generator) -> (loss, parts)``.
        images: (N, C, *spatial) films in [0, 1] (on the CPU; batches are moved to ``device``).
        image_steps: total images seen.
        batch_size: films per step (last partial batch of a pass dropped).
        base_lr: learning rate per 256 films.
        warmup_steps: linear warm-up steps.
        seed: seed of the order, the masks / views and the initialisation already done by the caller.
        weight_decay: cosine from the first to the second value (decayed parameter group only).
        clip_grad_norm: global gradient-norm clip.
        teacher_momentum: starting EMA momentum (cosine to 1), or None without a teacher.
        device: where to train.
        log_every: steps between printed lines.
        amp: bfloat16 autocast of the forward pass.

    Returns:
        one dict per logged step: ``step``, ``loss``, ``lr`` and the parts.
    """
    n = images.shape[0]
    if n < batch_size:
        raise ValueError(f"train_ssl: {n} films are fewer than one batch of {batch_size}.")
    steps = max(1, image_steps // batch_size)
    lr = scaled_learning_rate(base_lr, batch_size)
    model.to(device).train()
    groups = weight_decay_param_groups(model, weight_decay[0])
    optimizer = torch.optim.AdamW(groups, lr=lr)
    params = [p for g in groups for p in g["params"]]
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    per_pass = n // batch_size
    order = torch.randperm(n, generator=generator)
    history: list[dict[str, float]] = []
    start = time.time()
    for step in range(steps):
        if step and step % per_pass == 0:
            order = torch.randperm(n, generator=generator)
        k = step % per_pass
        batch = images[order[k * batch_size : (k + 1) * batch_size]].to(device)
        rate = (
            lr * (step + 1) / warmup_steps
            if step < warmup_steps
            else cosine_value(step - warmup_steps, steps - warmup_steps, lr, 1e-6)
        )
        optimizer.param_groups[0]["weight_decay"] = cosine_value(step, steps, *weight_decay)
        for g in optimizer.param_groups:
            g["lr"] = rate
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            loss, parts = loss_fn(batch, generator)
        loss = loss.float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"train_ssl: non-finite loss {float(loss)} at step {step}.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        optimizer.step()
        if teacher_momentum is not None:
            model.update_teacher(cosine_value(step, steps - 1, teacher_momentum, 1.0))  # type: ignore[operator]
        if step % log_every == 0 or step == steps - 1:
            row = {"step": float(step), "loss": float(loss.detach()), "lr": rate, **parts}
            history.append(row)
            print(f"  step {step + 1}/{steps} loss {row['loss']:.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    return history


def seeded_encoder(seed: int, **encoder_kwargs) -> AFiReEncoder:
    """An :class:`AFiReEncoder` initialised under ``torch.manual_seed(seed)`` (the random-init arm and the start of
    every hand-trained arm)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        return AFiReEncoder(**encoder_kwargs)
