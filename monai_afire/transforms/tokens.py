"""Token-level labels of a lesion mask, in the raster order of MONAI's ViT patch embedding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_afire.utils.checks import check_patch_size

__all__ = ["patch_labels"]


def patch_labels(mask: torch.Tensor, patch_size: int | Sequence[int], threshold: float = 0.0) -> torch.Tensor:
    """Label each patch token abnormal where the lesion mask covers it.

    Args:
        mask: lesion mask of shape (B, 1, H, W) or (B, 1, H, W, D), values >= 0.
        patch_size: patch side (an int for every spatial axis, or one value per axis); it must divide the image.
        threshold: a token is abnormal when the mean of ``mask`` over its patch is greater than this.

    Returns:
        bool tensor (B, L), L the number of patches, ordered as ``monai.networks.blocks.PatchEmbeddingBlock``
        flattens its grid (first spatial axis slowest).

    Raises:
        ValueError: when ``mask`` is not (B, 1, *spatial) with 2 or 3 spatial axes, or the patch does not divide it.
    """
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.ndim not in (4, 5) or mask.shape[1] != 1:
        raise ValueError(f"patch_labels: mask must have shape (B, 1, H, W[, D]), got {tuple(mask.shape)}.")
    spatial = tuple(mask.shape[2:])
    patch = check_patch_size("patch_labels", spatial, patch_size)
    pool = F.avg_pool2d if len(spatial) == 2 else F.avg_pool3d
    means = pool(mask.float(), kernel_size=patch, stride=patch)
    return means.flatten(1) > threshold
