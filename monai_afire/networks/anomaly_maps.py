"""Label-free anomaly maps from a pre-trained AFiRe model: lesion-prototype probability and restoration residual.

The lesion-prototype probability exists only for a model trained with monai-afire's category term and its lesion
prototype (``AFiRe(lesion_prototype=True)`` with ``AFiReLoss(category_weight > 0)``, the afire_pretrain bundle's
``afire_plus.json`` overlay). The authors' recipe has no lesion prototype: its anomaly map is the restoration residual.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .afire import AFiRe

__all__ = ["NO_LESION_PROTOTYPE", "token_values_to_image", "lesion_probability", "anomaly_maps"]

#: the message for a lesion-probability map asked of a model without a (trained) lesion prototype
NO_LESION_PROTOTYPE = (
    "the model has no lesion prototype (the authors' recipe, AFiRe(lesion_prototype=False), trained without the "
    "category term), so there is no lesion-probability map: train with the afire_pretrain bundle's afire_plus.json "
    "overlay (lesion_prototype=true, category_weight=1.0) for one, or use the restoration residual "
    "(anomaly_maps(model, images)['residual'])."
)


def token_values_to_image(values: torch.Tensor, grid_size: Sequence[int], spatial_size: Sequence[int]) -> torch.Tensor:
    """Lay per-token values (B, L) or (B, L, C) on the patch grid (MONAI ViT raster order) and upsample them.

    Returns:
        (B, C, *spatial_size) (C = 1 for (B, L) input), linearly interpolated from the patch centres.
    """
    grid = tuple(int(g) for g in grid_size)
    if values.ndim == 2:
        values = values.unsqueeze(-1)
    if values.ndim != 3 or values.shape[1] != int(torch.tensor(grid).prod()):
        raise ValueError(f"token values {tuple(values.shape)} do not fit a patch grid {grid} (expected (B, L[, C])).")
    maps = values.movedim(-1, 1).reshape(values.shape[0], values.shape[-1], *grid)
    mode = "bilinear" if len(grid) == 2 else "trilinear"
    return F.interpolate(maps.float(), size=tuple(int(s) for s in spatial_size), mode=mode, align_corners=False)


def lesion_probability(model: AFiRe, images: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Per-token probability (B, L) of the shared lesion prototype (index K of the student's K + 1 logits).

    Args:
        model: a :class:`AFiRe` model pre-trained with the lesion prototype and the category term.
        images: (B, C, *spatial) in the model's input range.
        temperature: softmax temperature of the student logits (the training temperature, 0.1 by default).

    Raises:
        ValueError: when ``temperature <= 0`` or the model has no lesion prototype (:data:`NO_LESION_PROTOTYPE`).
    """
    if temperature <= 0:
        raise ValueError(f"lesion_probability: temperature must be > 0, got {temperature}.")
    if not model.has_lesion_prototype:
        raise ValueError(f"lesion_probability: {NO_LESION_PROTOTYPE}")
    logits = model.student(images, with_lesion=True)
    return torch.softmax(logits.float() / temperature, dim=-1)[..., -1]


@torch.no_grad()
def anomaly_maps(
    model: AFiRe,
    images: torch.Tensor,
    temperature: float = 0.1,
    mask_threshold: float | None = 0.5,
    per_patch: bool = True,
) -> dict[str, torch.Tensor]:
    """Label-free anomaly maps of ``images``, each (B, 1, *spatial), higher meaning more abnormal.

    - ``residual``: the restoration residual ``|x - x^|`` (mean over channels), averaged per patch and upsampled when
      ``per_patch`` is True; ``token_residual`` (B, L) holds the per-patch means. With a lesion prototype the
      decoder masks the tokens whose lesion probability exceeds ``mask_threshold``, as it masked the synthetic
      lesions in training, so it restores normal anatomy there (None masks no token). Without one (the authors'
      recipe) no token is masked: the residual then only shows what the decoder fails to reproduce, a weaker map.
    - ``lesion_probability`` (only for a model with a lesion prototype): the lesion-prototype probability of each
      token, upsampled to the image, and ``token_probability`` (B, L). A model without one has no such map
      (see :data:`NO_LESION_PROTOTYPE`); these keys are then absent.
    - ``reconstruction``: the restored image x^ (like ``images``).

    The model is run in eval mode and put back in its previous mode.
    """
    if not isinstance(model, AFiRe):
        raise ValueError(f"anomaly_maps: model must be an AFiRe model, got {type(model).__name__}.")
    if temperature <= 0:
        raise ValueError(f"anomaly_maps: temperature must be > 0, got {temperature}.")
    was_training = model.training
    model.eval()
    try:
        encoder = model.student.encoder
        spatial = tuple(images.shape[2:])
        tokens = model.student.patch_tokens(images)
        token_probability = None
        masked = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if model.has_lesion_prototype:
            logits = model.student.head(tokens, with_lesion=True)
            token_probability = torch.softmax(logits.float() / temperature, dim=-1)[..., -1]
            if mask_threshold is not None:
                masked = token_probability > mask_threshold
        reconstruction = model.decoder(tokens, masked)
        residual = (images.float() - reconstruction.float()).abs().mean(dim=1, keepdim=True)
        pool = F.avg_pool2d if len(spatial) == 2 else F.avg_pool3d
        patch_means = pool(residual, kernel_size=encoder.patch_size, stride=encoder.patch_size).flatten(1)
        if per_patch:
            residual = token_values_to_image(patch_means, encoder.grid_size, spatial)
    finally:
        model.train(was_training)
    out = {"residual": residual, "token_residual": patch_means, "reconstruction": reconstruction}
    if token_probability is not None:
        out["lesion_probability"] = token_values_to_image(token_probability, encoder.grid_size, spatial)
        out["token_probability"] = token_probability
    return out
