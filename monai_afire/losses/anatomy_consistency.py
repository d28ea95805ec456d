"""Anatomy consistency: structure (per-position prototype targets) and category (shared lesion prototype) terms."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from monai_afire.utils.distributed import all_reduce_, distributed_ready

from .sinkhorn import sinkhorn_knopp

__all__ = ["AnatomyConsistencyLoss"]


class AnatomyConsistencyLoss(_Loss):
    """AFiRe's anatomy consistency loss with its prototype state.

    In training mode every call first updates the prototype state ``P`` (buffer ``prototype_state``, L x K, saved
    in checkpoints) from the batch mean ``T`` of the teacher logits (averaged over all processes, weighted by
    their batch sizes, when torch.distributed is initialised): ``P <- T`` when ``replace_prototypes`` is True or
    on the first update ever, else ``P <- m P + (1 - m) T``. ``P`` is then identical on every process, so the
    targets ``Q = sinkhorn_knopp(P)`` need no communication. In eval mode ``P`` is left unchanged.

    With ``p = softmax(student_logits / temperature)`` over the K position prototypes and the lesion prototype:

    - structure ``L_stru``: mean over normal tokens (b, j) of ``-sum_k Q[j, k] log p[b, j, k]``; the target is
      ``Q_j`` padded with 0 at the lesion index, so normal tokens put no mass on the lesion prototype;
    - category ``L_cate``: mean over abnormal tokens of ``-log p[b, j, K]`` (one-hot on the lesion prototype).

    An empty term (no normal or no abnormal token in the batch) is 0. With ``category_weight == 0`` (default) the
    softmax of the structure term runs over the K position prototypes only and abnormal tokens are ignored: exactly
    the authors' published formulation. The student logits may then be (B, L, K) (a model without a lesion
    prototype, ``AFiRe(lesion_prototype=False)``) or (B, L, K + 1) (the lesion logit is dropped, so the lesion
    prototype gets no gradient and stays untrained). ``category_weight > 0`` (monai-afire's extension, the
    ``afire_plus.json`` overlay) needs the lesion logit. Everything is vectorised over tokens.

    Args:
        num_positions: token positions L.
        num_prototypes: prototypes per position K.
        student_temperature: temperature of the student softmax.
        prototype_momentum: EMA momentum m of the prototype state.
        epsilon: Sinkhorn temperature.
        sinkhorn_iterations: Sinkhorn rounds.
        category_weight: weight of ``L_cate`` in :meth:`forward`; 0 (default) selects the authors' formulation.

    Raises:
        ValueError: on bad arguments, on logits of the wrong shape, or when ``category_weight > 0`` but the student
            logits have no lesion logit.
    """

    def __init__(
        self,
        num_positions: int,
        num_prototypes: int,
        student_temperature: float = 0.1,
        prototype_momentum: float = 0.75,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        category_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if student_temperature <= 0 or not 0.0 <= prototype_momentum <= 1.0 or category_weight < 0:
            raise ValueError(
                "AnatomyConsistencyLoss: need student_temperature > 0, prototype_momentum in [0, 1] and "
                f"category_weight >= 0, got {student_temperature}, {prototype_momentum}, {category_weight}."
            )
        self.num_positions = int(num_positions)
        self.num_prototypes = int(num_prototypes)
        self.student_temperature = float(student_temperature)
        self.prototype_momentum = float(prototype_momentum)
        self.epsilon = float(epsilon)
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.category_weight = float(category_weight)
        self.register_buffer("prototype_state", torch.zeros(self.num_positions, self.num_prototypes))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._warned_untrained_lesion = False

    @torch.no_grad()
    def update_prototype_state(self, teacher_logits: torch.Tensor, replace: bool = False) -> torch.Tensor:
        """Update ``prototype_state`` from teacher logits (B, L, K) and return it."""
        batch_sum = teacher_logits.detach().float().sum(dim=0)
        count = torch.full((), float(teacher_logits.shape[0]), device=batch_sum.device)
        if distributed_ready():
            all_reduce_(batch_sum)
            all_reduce_(count)
        # branch-free, so this update itself needs no host-device synchronisation (a training step still syncs
        # elsewhere: the loss components as floats, the gradient norm, the NaN guard): P <- T on the first update or
        # when asked, else EMA; an empty (global) batch leaves P unchanged
        mean = batch_sum / count.clamp_min(1)
        weight = (
            torch.full_like(count, 1.0)
            if replace
            else torch.where(self.num_updates == 0, 1.0, 1.0 - self.prototype_momentum)
        )
        self.prototype_state.lerp_(mean, torch.where(count > 0, weight, 0.0))
        self.num_updates += (count > 0).long()
        return self.prototype_state

    def targets(self) -> torch.Tensor:
        """Sinkhorn targets Q (L, K) of the current prototype state."""
        return sinkhorn_knopp(self.prototype_state, self.epsilon, self.sinkhorn_iterations)

    def structure_and_category(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        token_labels: torch.Tensor,
        replace_prototypes: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms ``(L_stru, L_cate)`` as scalar tensors.

        Args:
            student_logits: (B, L, K + 1) with the lesion logit last, or (B, L, K) from a model without a lesion
                prototype (only with ``category_weight == 0``).
            teacher_logits: (B, L, K).
            token_labels: (B, L) bool, True for abnormal tokens.
            replace_prototypes: set P to the batch mean instead of the EMA step (first epoch).
        """
        if teacher_logits.ndim != 3:
            raise ValueError(
                f"AnatomyConsistencyLoss: teacher_logits must be (B, L, K), got {tuple(teacher_logits.shape)}."
            )
        b, n, k = teacher_logits.shape
        if (n, k) != (self.num_positions, self.num_prototypes) or student_logits.shape not in (
            (b, n, k),
            (b, n, k + 1),
        ):
            raise ValueError(
                f"AnatomyConsistencyLoss: expected student_logits (B, {self.num_positions}, {self.num_prototypes}) "
                f"or (B, {self.num_positions}, {self.num_prototypes + 1}) with the lesion logit, and teacher_logits "
                f"(B, {self.num_positions}, {self.num_prototypes}), got {tuple(student_logits.shape)} and "
                f"{tuple(teacher_logits.shape)}."
            )
        if self.category_weight > 0 and student_logits.shape[-1] == k:
            raise ValueError(
                f"AnatomyConsistencyLoss: category_weight={self.category_weight} needs the lesion logit, but the "
                f"student logits {tuple(student_logits.shape)} have none: build the model with "
                "AFiRe(..., lesion_prototype=True) (the bundle's afire_plus.json overlay), or set category_weight=0."
            )
        if token_labels.shape != (b, n):
            raise ValueError(
                f"AnatomyConsistencyLoss: token_labels must be ({b}, {n}), got {tuple(token_labels.shape)}."
            )
        if self.category_weight == 0 and student_logits.shape[-1] == k + 1 and not self._warned_untrained_lesion:
            self._warned_untrained_lesion = True
            warnings.warn(
                "AnatomyConsistencyLoss: category_weight=0 ignores the lesion logit, so the model's lesion prototype "
                "gets no gradient and stays untrained (its probability is no anomaly score, and DDP may complain of "
                "an unused parameter): build AFiRe(lesion_prototype=False) as train.json does, or set "
                "category_weight > 0 as afire_plus.json does.",
                stacklevel=2,
            )
        if self.training:
            self.update_prototype_state(teacher_logits, replace=replace_prototypes)
        q = self.targets()
        scaled = student_logits.float() / self.student_temperature
        abnormal = token_labels.bool()
        normal = (~abnormal).float()
        if self.category_weight == 0:
            log_p = F.log_softmax(scaled[..., :k], dim=-1)
            category = scaled.new_zeros(())
        else:
            log_p = F.log_softmax(scaled, dim=-1)
            lesion_nll = -log_p[..., k]
            category = (lesion_nll * abnormal.float()).sum() / abnormal.sum().clamp_min(1)
            log_p = log_p[..., :k]
        token_ce = -(log_p * q.unsqueeze(0)).sum(dim=-1)
        structure = (token_ce * normal).sum() / normal.sum().clamp_min(1)
        return structure, category

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        token_labels: torch.Tensor,
        replace_prototypes: bool = False,
    ) -> torch.Tensor:
        """``L_stru + category_weight * L_cate``; see :meth:`structure_and_category` for the arguments."""
        structure, category = self.structure_and_category(
            student_logits, teacher_logits, token_labels, replace_prototypes
        )
        return structure + self.category_weight * category
