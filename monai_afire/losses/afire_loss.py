"""The combined AFiRe objective."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn.modules.loss import _Loss

from .anatomy_consistency import AnatomyConsistencyLoss
from .restoration import AnomalyRemovalRestorationLoss

__all__ = ["AFiReLoss"]


class AFiReLoss(_Loss):
    """``structure_weight * L_stru + category_weight * L_cate + restoration_weight * L_rest``.

    The defaults are the authors' objective: no category term (the structure softmax runs over the K position
    prototypes; the model needs no lesion prototype) and the restoration MSE on ImageNet-normalised pixels.
    monai-afire's extension, the category term with its shared lesion prototype, is ``category_weight=1.0`` with
    ``AFiRe(..., lesion_prototype=True)`` (the bundle's ``afire_plus.json`` overlay).

    Args:
        num_positions: token positions L.
        num_prototypes: prototypes per position K.
        structure_weight: weight of the structure term.
        category_weight: weight of the category term; 0 (default) gives the authors' formulation (see
            :class:`AnatomyConsistencyLoss`); > 0 needs student logits with the lesion logit.
        restoration_weight: weight of the restoration term.
        restoration_target: ``"normalized"`` (default, authors': MSE on ImageNet-normalised pixels, about 19.6x the
            MSE on [0, 1] pixels of a grey film) or ``"raw"`` (MSE on [0, 1] pixels); see
            :class:`AnomalyRemovalRestorationLoss`.
        kwargs: ``lesion_weight`` goes to :class:`AnomalyRemovalRestorationLoss`; the rest
            (``student_temperature``, ``prototype_momentum``, ``epsilon``, ``sinkhorn_iterations``) to
            :class:`AnatomyConsistencyLoss`.

    The prototype state lives in ``self.anatomy.prototype_state`` (part of this module's state dict).
    """

    def __init__(
        self,
        num_positions: int,
        num_prototypes: int,
        structure_weight: float = 1.0,
        category_weight: float = 0.0,
        restoration_weight: float = 1.0,
        restoration_target: str = "normalized",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if min(structure_weight, category_weight, restoration_weight) < 0:
            raise ValueError(
                f"AFiReLoss: weights must be >= 0, got {structure_weight}, {category_weight}, {restoration_weight}."
            )
        lesion_weight = kwargs.pop("lesion_weight", 0.0)
        self.structure_weight = float(structure_weight)
        self.category_weight = float(category_weight)
        self.restoration_weight = float(restoration_weight)
        self.anatomy = AnatomyConsistencyLoss(num_positions, num_prototypes, category_weight=category_weight, **kwargs)
        self.restoration = AnomalyRemovalRestorationLoss(lesion_weight=lesion_weight, target=restoration_target)

    def forward(
        self,
        outputs: Mapping[str, torch.Tensor],
        clean: torch.Tensor,
        lesion_mask: torch.Tensor,
        replace_prototypes: bool = False,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its components.

        Args:
            outputs: the dict returned by :meth:`monai_afire.networks.AFiRe.forward`.
            clean: the clean images (restoration target).
            lesion_mask: the lesion mask (for ``lesion_weight``).
            replace_prototypes: P <- batch mean (first epoch) instead of the EMA step.

        Returns:
            (total, {"structure": float, "category": float, "restoration": float}) with the unweighted terms
            (``category`` is 0 when ``category_weight`` is 0; ``restoration`` is on the scale of
            ``restoration_target``).
        """
        missing = {"student_logits", "teacher_logits", "reconstruction", "token_labels"} - set(outputs)
        if missing:
            raise ValueError(f"AFiReLoss: outputs lack the keys {sorted(missing)}; pass the dict from AFiRe.forward.")
        structure, category = self.anatomy.structure_and_category(
            outputs["student_logits"], outputs["teacher_logits"], outputs["token_labels"], replace_prototypes
        )
        restoration = self.restoration(outputs["reconstruction"], clean, lesion_mask)
        total = (
            self.structure_weight * structure + self.category_weight * category + self.restoration_weight * restoration
        )
        values = torch.stack([structure.detach(), category.detach(), restoration.detach()]).tolist()
        return total, dict(zip(("structure", "category", "restoration"), values))
