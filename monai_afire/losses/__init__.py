"""Losses of monai-afire: Sinkhorn-Knopp targets, anatomy consistency, restoration, and their AFiRe sum."""

from __future__ import annotations

from monai_afire.utils.deprecation import moved_modules

from .afire_loss import AFiReLoss
from .anatomy_consistency import AnatomyConsistencyLoss
from .restoration import IMAGENET_STD, AnomalyRemovalRestorationLoss, normalized_scale
from .sinkhorn import sinkhorn_knopp

__all__ = [
    "AFiReLoss",
    "AnatomyConsistencyLoss",
    "AnomalyRemovalRestorationLoss",
    "IMAGENET_STD",
    "normalized_scale",
    "sinkhorn_knopp",
]

moved_modules(__name__, {"distributed": "monai_afire.utils.distributed"})  # deprecated path, one release
