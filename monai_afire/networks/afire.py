"""The AFiRe pre-training model: student (encoder, prototype head, decoder) and its EMA teacher."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn as nn

from monai_afire.transforms.tokens import patch_labels

from .decoder import AnomalyRemovalDecoder
from .encoder import AFiReEncoder
from .prototype_head import SpatialPrototypeHead

__all__ = ["AFiRe", "EncoderWithHead"]


class EncoderWithHead(nn.Module):
    """An encoder followed by a spatial prototype head: the part of the student that the teacher copies."""

    def __init__(self, encoder: AFiReEncoder, head: SpatialPrototypeHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, L, D) of ``images``, dropping the class token when the encoder has one."""
        out = self.encoder(images)
        return out[0] if isinstance(out, tuple) else out

    def forward(self, images: torch.Tensor, with_lesion: bool | None = None) -> torch.Tensor:
        """Prototype logits (B, L, K + 1) with the lesion logit, or (B, L, K) without it (see
        :meth:`SpatialPrototypeHead.forward`)."""
        return self.head(self.patch_tokens(images), with_lesion=with_lesion)


class AFiRe(nn.Module):
    """Anatomy-driven self-supervised pre-training model (AFiRe, AAAI 2025).

    The student (``student.encoder`` + ``student.head``) sees the lesioned image; ``decoder`` restores the clean
    image from the student's tokens with the abnormal ones masked; the teacher (``teacher``, a deep copy of the
    student with ``requires_grad=False``, always in eval mode) sees the clean image. The teacher follows the
    student by :meth:`update_teacher` (in training, the :class:`monai_afire.handlers.TeacherEMA` handler calls it
    after every optimiser step with the scheduled momentum, 0.996 at the start in the paper).

    Args:
        encoder: the student's ViT; the teacher gets a copy.
        num_prototypes: prototypes per position K.
        head_hidden_dim: hidden width of the head's MLP.
        head_bottleneck_dim: width of the normalised projection and of the prototypes.
        head_nlayers: linear layers in the head's MLP.
        decoder_dim: decoder width.
        decoder_depth: decoder transformer blocks.
        decoder_heads: decoder attention heads.
        patch_threshold: a token is abnormal when the mean lesion mask over its patch exceeds this.
        lesion_prototype: give the student head the shared lesion prototype of monai-afire's category term (student
            logits (B, L, K + 1)); False (default) is the authors' head (student logits (B, L, K)). Train it with
            ``AFiReLoss(category_weight > 0)`` (the bundle's ``afire_plus.json``): only then is its probability a
            label-free anomaly score.

    Example::

        model = AFiRe(AFiReEncoder("vit_small", img_size=224))
        out = model(lesioned, clean, lesion_mask)  # dict, see forward
    """

    def __init__(
        self,
        encoder: AFiReEncoder,
        num_prototypes: int = 256,
        head_hidden_dim: int = 1024,
        head_bottleneck_dim: int = 256,
        head_nlayers: int = 3,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        patch_threshold: float = 0.0,
        lesion_prototype: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(encoder, AFiReEncoder):
            raise ValueError(f"AFiRe: encoder must be an AFiReEncoder, got {type(encoder).__name__}.")
        self.num_positions = encoder.num_positions
        self.num_prototypes = int(num_prototypes)
        self.patch_threshold = float(patch_threshold)
        head = SpatialPrototypeHead(
            encoder.hidden_size,
            encoder.num_positions,
            num_prototypes,
            head_hidden_dim,
            head_bottleneck_dim,
            head_nlayers,
            lesion_prototype=lesion_prototype,
        )
        self.student = EncoderWithHead(encoder, head)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.decoder = AnomalyRemovalDecoder(
            encoder.grid_size,
            encoder.patch_size,
            encoder.config["in_channels"],
            encoder.hidden_size,
            decoder_dim,
            decoder_depth,
            decoder_heads,
        )

    def train(self, mode: bool = True) -> AFiRe:
        """Set train/eval mode of the student and decoder; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(
        self, lesioned: torch.Tensor, clean: torch.Tensor, lesion_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """One AFiRe pass.

        Args:
            lesioned: student input (B, C, *spatial).
            clean: teacher input and restoration target, same shape.
            lesion_mask: (B, 1 or C, *spatial), >= 0; channels are reduced by their maximum.

        Returns:
            dict with ``student_logits`` (B, L, K + 1) with the lesion prototype, else (B, L, K),
            ``teacher_logits`` (B, L, K) (no gradient),
            ``reconstruction`` (like ``clean``) and ``token_labels`` (B, L) bool, True for abnormal tokens.
        """
        if lesioned.shape != clean.shape or lesion_mask.shape[0] != clean.shape[0]:
            raise ValueError(
                f"AFiRe: lesioned {tuple(lesioned.shape)} and clean {tuple(clean.shape)} must match, and lesion_mask "
                f"{tuple(lesion_mask.shape)} must have the same batch and spatial size."
            )
        if lesion_mask.shape[1] != 1:
            lesion_mask = lesion_mask.amax(dim=1, keepdim=True)
        token_labels = patch_labels(lesion_mask, self.student.encoder.patch_size, self.patch_threshold)
        tokens = self.student.patch_tokens(lesioned)
        student_logits = self.student.head(tokens)
        with torch.no_grad():
            teacher_logits = self.teacher(clean, with_lesion=False)
        reconstruction = self.decoder(tokens, token_labels)
        return {
            "student_logits": student_logits,
            "teacher_logits": teacher_logits,
            "reconstruction": reconstruction,
            "token_labels": token_labels,
        }

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA step: ``teacher <- momentum * teacher + (1 - momentum) * student`` for every parameter; buffers are
        copied from the student, not averaged."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"AFiRe.update_teacher: momentum must be in [0, 1], got {momentum}.")
        weight = 1.0 - momentum
        teacher = list(self.teacher.parameters())
        torch._foreach_mul_(teacher, 1.0 - weight)
        torch._foreach_add_(teacher, [p.detach() for p in self.student.parameters()], alpha=weight)
        for t_buf, s_buf in zip(self.teacher.buffers(), self.student.buffers()):
            t_buf.copy_(s_buf)

    @property
    def has_lesion_prototype(self) -> bool:
        """Whether the student head has the shared lesion prototype (``lesion_prototype=True``)."""
        return self.student.head.has_lesion_prototype

    def teacher_encoder(self) -> AFiReEncoder:
        """The teacher's encoder: the network to keep after pre-training."""
        return self.teacher.encoder

    def prototype_parameters(self) -> Iterator[nn.Parameter]:
        """The student's prototype parameters (position banks and, if any, the lesion prototype), frozen in the
        first epoch."""
        yield self.student.head.prototypes
        if self.student.head.lesion_prototype is not None:
            yield self.student.head.lesion_prototype
