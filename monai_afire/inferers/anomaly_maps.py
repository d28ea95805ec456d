"""Label-free anomaly maps from a pre-trained AFiRe model: lesion-prototype probability and restoration residual.

The lesion probability of a token is the probability of the shared lesion prototype under
``softmax(logits / temperature)`` over the K position prototypes and the lesion one, computed by one function for
either branch of the model: ``network="student"`` (the branch the decoder was trained with) or ``"teacher"`` (its
EMA, the encoder kept after pre-training).

The lesion-prototype probability exists only for a model trained with monai-afire's category term and its lesion
prototype (``AFiRe(lesion_prototype=True)`` with ``AFiReLoss(category_weight > 0)``, the afire_pretrain bundle's
``afire_plus.json`` overlay). The authors' recipe has no lesion prototype: its anomaly map is the restoration residual.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_afire.networks.afire import AFiRe, EncoderWithHead
from monai_afire.utils.wrappers import unwrap_model

__all__ = ["NETWORKS", "NO_LESION_PROTOTYPE", "token_values_to_image", "lesion_probability", "anomaly_maps"]

#: the branches of an AFiRe model whose lesion probability can be read.
NETWORKS = ("student", "teacher")
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


def _branch(model: torch.nn.Module, network: str, owner: str) -> EncoderWithHead:
    """``model.student`` or ``model.teacher`` of an AFiRe model (wrappers removed)."""
    model = unwrap_model(model)
    if not isinstance(model, AFiRe):
        raise ValueError(f"{owner}: model must be an AFiRe model, got {type(model).__name__}.")
    if network not in NETWORKS:
        raise ValueError(f"{owner}: network must be one of {NETWORKS}, got {network!r}.")
    return getattr(model, network)


def _lesion_probability(branch: EncoderWithHead, tokens: torch.Tensor, temperature: float, owner: str) -> torch.Tensor:
    """Lesion-prototype probability (B, L) of patch tokens under ``branch``'s prototype head."""
    if temperature <= 0:
        raise ValueError(f"{owner}: temperature must be > 0, got {temperature}.")
    if not branch.head.has_lesion_prototype:
        raise ValueError(f"{owner}: {NO_LESION_PROTOTYPE}")
    logits = branch.head(tokens, with_lesion=True)
    return torch.softmax(logits.float() / temperature, dim=-1)[..., -1]


def lesion_probability(
    model: AFiRe, images: torch.Tensor, temperature: float = 0.1, network: str = "student"
) -> torch.Tensor:
    """Per-token probability (B, L) of the shared lesion prototype (index K of the K + 1 prototype logits).

    Args:
        model: a :class:`~monai_afire.networks.AFiRe` model pre-trained with the lesion prototype and the category
            term.
        images: (B, C, *spatial) in the model's input range.
        temperature: softmax temperature of the logits (the training temperature, 0.1 by default).
        network: ``"student"`` or ``"teacher"``: the branch whose encoder and prototype head are used.

    Raises:
        ValueError: on a bad ``network`` or ``temperature``, or when the model has no lesion prototype
            (:data:`NO_LESION_PROTOTYPE`).
    """
    branch = _branch(model, network, "lesion_probability")
    return _lesion_probability(branch, branch.patch_tokens(images), temperature, "lesion_probability")


@torch.no_grad()
def anomaly_maps(
    model: AFiRe,
    images: torch.Tensor,
    temperature: float = 0.1,
    mask_threshold: float | None = 0.5,
    per_patch: bool = True,
    network: str = "student",
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

    ``network`` chooses the branch (``"student"`` or ``"teacher"``) whose tokens give the lesion probability and
    feed the decoder. The model is run in eval mode and put back in its previous mode.
    """
    branch = _branch(model, network, "anomaly_maps")
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    try:
        encoder = branch.encoder
        spatial = tuple(images.shape[2:])
        tokens = branch.patch_tokens(images)
        token_probability = None
        masked = torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if branch.head.has_lesion_prototype:
            token_probability = _lesion_probability(branch, tokens, temperature, "anomaly_maps")
            if mask_threshold is not None:
                masked = token_probability > mask_threshold
        elif temperature <= 0:
            raise ValueError(f"anomaly_maps: temperature must be > 0, got {temperature}.")
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
