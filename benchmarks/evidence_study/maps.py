"""Label-free localisation maps and anatomy cohesion.

Maps (each (N, S, S), higher = more abnormal, in the films' MONAI layout):

- ``lesion_probability`` (AFiRe arms with the lesion prototype): the student's per-token probability of the shared
  lesion prototype (softmax of the K + 1 logits at temperature 0.1), laid on the patch grid and upsampled.
- ``residual_patch`` / ``residual_pixel`` (AFiRe arms with restoration, MAE): the restoration residual
  ``|restored - input|`` with the real film in, per patch (upsampled) or per pixel (Gaussian-smoothed). AFiRe's decoder
  restores from the student's tokens (with the lesion prototype: the tokens it calls lesion are masked, as in
  training); MAE restores each token from the others (:func:`mae_maps`).
- ``mean_film`` (pixel arm): ``|film - mean normal pre-training film|``, Gaussian-smoothed: what a map must beat.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from monai_afire.metrics import cohesion_metrics, localization_scores, pixel_auroc, token_anatomy_labels
from monai_afire.networks import token_values_to_image

from .data import FINDINGS, Split

__all__ = [
    "lesion_features",
    "afire_maps",
    "mae_maps",
    "mean_film_maps",
    "localisation_cases",
    "score_maps",
    "synthetic_lesion_auroc",
    "cohesion",
]


def _smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (N, 1, H, W) maps."""
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = F.conv2d(F.pad(maps, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


@torch.no_grad()
def lesion_features(model: nn.Module, tokens: torch.Tensor, temperature: float = 0.1, top: int = 4) -> torch.Tensor:
    """Pooled lesion-prototype probability of the teacher: for each film the maximum, the mean and the mean of the
    ``top`` largest per-token probabilities (N, 3), from the teacher encoder's tokens (N, L, D) and the teacher
    head (a model trained with the lesion prototype)."""
    model.eval()
    logits = torch.cat(
        [model.teacher.head(tokens[i : i + 256].float(), with_lesion=True) for i in range(0, tokens.shape[0], 256)]
    )
    prob = torch.softmax(logits.float() / temperature, dim=-1)[..., -1]
    k = min(top, prob.shape[1])
    return torch.stack([prob.amax(1), prob.mean(1), prob.topk(k, dim=1).values.mean(1)], dim=1)


@torch.no_grad()
def afire_maps(
    model: nn.Module, images: torch.Tensor, lesion_prototype: bool, batch_size: int = 64, temperature: float = 0.1
) -> dict[str, torch.Tensor]:
    """Maps of a trained AFiRe model (see the module docstring)."""
    model.eval()
    encoder = model.student.encoder
    out: dict[str, list[torch.Tensor]] = {"residual_patch": [], "residual_pixel": []}
    if lesion_prototype:
        out["lesion_probability"] = []
    spatial = tuple(images.shape[2:])
    sigma = encoder.patch_size[0] / 4
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size]
        tokens = model.student.patch_tokens(x)
        masked = torch.zeros(tokens.shape[:2], dtype=torch.bool)
        if lesion_prototype:
            logits = model.student.head(tokens, with_lesion=True)
            prob = torch.softmax(logits.float() / temperature, dim=-1)[..., -1]
            masked = prob > 0.5
            out["lesion_probability"].append(token_values_to_image(prob, encoder.grid_size, spatial)[:, 0])
        restored = model.decoder(tokens, masked)
        residual = (x - restored).abs().mean(1, keepdim=True)
        patch = F.avg_pool2d(residual, encoder.patch_size, encoder.patch_size).flatten(1)
        out["residual_patch"].append(token_values_to_image(patch, encoder.grid_size, spatial)[:, 0])
        out["residual_pixel"].append(_smooth(residual, sigma)[:, 0])
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def mae_maps(model: nn.Module, images: torch.Tensor, batch_size: int = 64, rounds: int = 4) -> dict[str, torch.Tensor]:
    """Residual maps of a trained MAE: each token restored from the others (``rounds`` fixed groups)."""
    model.eval()
    encoder = model.encoder
    num = encoder.num_positions
    order = torch.randperm(num, generator=torch.Generator().manual_seed(0))
    groups = [order[r::rounds] for r in range(rounds)]
    spatial = tuple(images.shape[2:])
    patch_maps, pixel_maps = [], []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size]
        total, count = torch.zeros_like(x[:, :1]), torch.zeros_like(x[:, :1])
        for group in groups:
            keep = group.unsqueeze(0).expand(x.shape[0], -1)
            restored, masked = model(x, keep)
            # the pixels of the hidden patches (nearest-neighbour cover of the patch grid)
            hidden = F.interpolate(masked.float().view(x.shape[0], 1, *encoder.grid_size), size=spatial) > 0.5
            total += (x - restored).abs().mean(1, keepdim=True) * hidden
            count += hidden.float()
        residual = total / count.clamp_min(1)
        patch = F.avg_pool2d(residual, encoder.patch_size, encoder.patch_size).flatten(1)
        patch_maps.append(token_values_to_image(patch, encoder.grid_size, spatial)[:, 0])
        pixel_maps.append(_smooth(residual, encoder.patch_size[0] / 4)[:, 0])
    return {"residual_patch": torch.cat(patch_maps), "residual_pixel": torch.cat(pixel_maps)}


def mean_film_maps(images: torch.Tensor, mean_film: torch.Tensor, sigma: float = 2.0) -> dict[str, torch.Tensor]:
    """``|film - mean normal film|``, smoothed (the label-free pixel baseline)."""
    return {"mean_film": _smooth((images - mean_film).abs(), sigma)[:, 0]}


def localisation_cases(split: Split, max_films: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Films with at least one boxed finding (the first ``max_films``) and their (film, finding) cases."""
    films, cases = [], []
    for i in range(len(split)):
        present = sorted({FINDINGS.index(n) for n in split.box_labels[i] if n in FINDINGS})
        present = [c for c in present if split.masks[i, c].any()]
        if not present:
            continue
        if len(films) >= max_films:
            break
        films.append(i)
        cases.extend((len(films) - 1, c) for c in present)
    return np.asarray(films, dtype=np.int64), cases


def score_maps(maps: torch.Tensor, split: Split, films: np.ndarray, cases: Sequence[tuple[int, int]]) -> dict:
    """Pointing game, box hits (IoU 0.1 / 0.3 / 0.5) and pixel AUROC per finding and over all cases
    (:func:`monai_afire.metrics.localization_scores`, maps and masks in MONAI layout)."""
    arr = maps.numpy()
    case_maps, boxes, findings, masks = [], [], [], []
    for j, c in cases:
        i = int(films[j])
        name = FINDINGS[c]
        case_maps.append(arr[j])
        boxes.append([b for b, n in zip(split.boxes[i], split.box_labels[i]) if n == name])
        findings.append(name)
        masks.append(split.masks[i, c])
    return localization_scores(case_maps, boxes, findings, masks, layout="xy")


def synthetic_lesion_auroc(map_fn, split: Split, films: np.ndarray, seed: int = 0) -> float:
    """Mean pixel AUROC of ``map_fn(images) -> (N, S, S)`` against Synthetic Lesion Masks added to normal films
    (the pretext task, with the transform's default recipe)."""
    from monai_afire.transforms import RandSyntheticLesion

    lesion = RandSyntheticLesion(prob=1.0)
    lesion.set_random_state(seed)
    images, masks = [], []
    for i in films:
        out, mask = lesion(split.images[int(i)], return_mask=True)
        images.append(torch.as_tensor(out).float())
        masks.append(np.asarray(mask)[0] > 0)
    maps = map_fn(torch.stack(images)).numpy()
    values = [pixel_auroc(m, k) for m, k in zip(maps, masks)]
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else float("nan")


def cohesion(tokens: torch.Tensor, anatomy: np.ndarray, patch_size: int, seed: int = 0) -> dict[str, float]:
    """Silhouette, k-means NMI / ARI and k-NN accuracy of the tokens by anatomy (background left out)."""
    labels = token_anatomy_labels(torch.as_tensor(anatomy[:, None].astype(np.int64)), patch_size)
    groups = np.repeat(np.arange(tokens.shape[0]), tokens.shape[1])
    out = cohesion_metrics(
        tokens.reshape(-1, tokens.shape[-1]).numpy(),
        labels.reshape(-1).numpy(),
        groups=groups,
        ignore_labels=(0,),
        max_samples=5000,
        seed=seed,
    )
    return {k: float(out[k]) for k in ("silhouette", "nmi", "ari", "knn_accuracy")}
