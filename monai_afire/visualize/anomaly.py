"""The anomaly-map figure: a film with synthetic lesions, its per-token anomaly map, the lesioned-minus-clean map and
how well each separates the lesion tokens (token AUROC).

A label-free anomaly map of one film mixes two things: what the model sees in the lesion, and what it sees in the
film anyway (anatomy, exposure, the edges of the lungs). Subtracting the map of the same film without the lesions
removes the second. The figure shows both, for each case:

- the lesioned film with the outline of the lesion mask;
- the map on the lesioned film (over the film, with a colour bar), and the map of the clean film in a first row, on
  the same colour scale;
- the difference map (map on the lesioned film minus map on the clean film), on a diverging scale centred at 0;
- in each map panel's title, the token AUROC: how well the map's token values rank the abnormal tokens (those the
  lesion mask covers, as in training: mean of the mask over the patch > ``patch_threshold``) above the others.

The map is either kind monai-afire computes (:func:`monai_afire.inferers.token_outputs`): the probability of the
shared lesion prototype (models trained with the lesion prototype and the category term) or the restoration residual
(models without it); the figure says which.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from monai_afire.transforms.tokens import patch_labels

__all__ = ["MAP_KINDS", "AnomalyFigure", "plot_anomaly_cases", "token_auroc", "write_anomaly_figure"]

ArrayLike = np.ndarray | torch.Tensor

#: the map kinds the figure knows, and how it names them
MAP_KINDS = {
    "lesion_probability": "lesion-prototype probability",
    "restoration_residual": "restoration residual |x - x^| (patch mean)",
    "residual": "restoration residual |x - x^| (patch mean)",
}
#: colour of the lesion outline
OUTLINE = "cyan"


@dataclass
class AnomalyFigure:
    """What :func:`plot_anomaly_cases` drew.

    Attributes:
        path: the written file.
        map_kind: the kind of map (a key of :data:`MAP_KINDS`).
        map_auroc: token AUROC of the map on each lesioned film (None where undefined: no or only abnormal tokens).
        difference_auroc: token AUROC of each lesioned-minus-clean map (None where undefined).
        abnormal_tokens: abnormal tokens of each case; ``num_tokens`` the tokens of a film.
        titles: the panels' titles, row by row (the clean film's row first).
    """

    path: Path
    map_kind: str
    map_auroc: list[float | None] = field(default_factory=list)
    difference_auroc: list[float | None] = field(default_factory=list)
    abnormal_tokens: list[int] = field(default_factory=list)
    num_tokens: int = 0
    titles: list[list[str]] = field(default_factory=list)


def _array(x: ArrayLike, name: str, ndim: int = 2) -> np.ndarray:
    """``x`` as a float64 array with ``ndim`` axes (leading singleton axes removed)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x, dtype=np.float64)
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{name} must be a {ndim}-D array (leading singleton axes allowed), got shape {np.shape(x)}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has NaN or infinite values.")
    return arr


def token_auroc(token_map: ArrayLike, abnormal: ArrayLike) -> float | None:
    """Area under the ROC curve of the token values ``token_map`` for the abnormal tokens ``abnormal``.

    Args:
        token_map: one value per token (any shape).
        abnormal: bool (or 0/1) per token, the same number of tokens.

    Returns:
        the AUROC, or None when it is undefined (all tokens abnormal, or none).

    Raises:
        ValueError: when the two hold different numbers of tokens.
    """
    scores = np.asarray(token_map.detach().cpu() if isinstance(token_map, torch.Tensor) else token_map, dtype=float)
    labels = np.asarray(abnormal.detach().cpu() if isinstance(abnormal, torch.Tensor) else abnormal).astype(bool)
    if scores.size != labels.size:
        raise ValueError(f"token_auroc: {scores.size} token values for {labels.size} token labels.")
    labels = labels.ravel()
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, scores.ravel()))


def _abnormal_tokens(mask: np.ndarray, grid: tuple[int, ...], threshold: float, index: int) -> np.ndarray:
    """(grid) bool: the tokens the lesion mask covers (mean over the patch > threshold)."""
    patch = []
    for side, cells in zip(mask.shape, grid):
        if side % cells:
            raise ValueError(
                f"plot_anomaly_cases: case {index}: the image {mask.shape} is not a whole number of tokens of the "
                f"map grid {grid}."
            )
        patch.append(side // cells)
    labels = patch_labels(torch.as_tensor(mask, dtype=torch.float32)[None, None], patch, threshold)
    return labels.reshape(grid).numpy()


def _upsample(token_map: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each token's value over its whole patch (nearest neighbour: the tiles the model scored)."""
    reps = [s // g for s, g in zip(shape, token_map.shape)]
    return np.kron(token_map, np.ones(reps))


def _auroc_text(value: float | None) -> str:
    return "token AUROC undefined" if value is None else f"token AUROC {value:.3f}"


def plot_anomaly_cases(
    path: str | os.PathLike,
    clean_image: ArrayLike,
    clean_map: ArrayLike,
    lesioned_images: Sequence[ArrayLike],
    lesioned_maps: Sequence[ArrayLike],
    lesion_masks: Sequence[ArrayLike],
    map_kind: str,
    titles: Sequence[str] | None = None,
    patch_threshold: float = 0.0,
    layout: str = "yx",
    suptitle: str | None = None,
    alpha: float = 0.6,
    dpi: int = 100,
) -> AnomalyFigure:
    """Save the anomaly-map figure (see the module doc): a row for the clean film, then one row per lesioned case.

    Args:
        path: output file (PNG/PDF by extension); its folder is created.
        clean_image: the film without lesions, (H, W) (leading singleton axes allowed).
        clean_map: its token map, on the token grid (gh, gw); H and W must be whole multiples of gh and gw.
        lesioned_images: the same film with synthetic lesions, one per case, each like ``clean_image``.
        lesioned_maps: their token maps, each like ``clean_map``.
        lesion_masks: the lesion masks (> 0 where a lesion was added), each like ``clean_image``.
        map_kind: ``"lesion_probability"``, ``"restoration_residual"`` (or ``"residual"``): named in the titles.
        titles: one label per case (default "case i").
        patch_threshold: a token is abnormal when the mean of its patch of the mask exceeds this (AFiRe's
            ``patch_threshold``, 0 by default).
        layout: ``"yx"`` for arrays indexed [row, column]; ``"xy"`` for MONAI-convention arrays (first axis along the
            width, as ``radiograph_transforms`` loads films), transposed for display (the AUROC does not depend on it).
        suptitle: the figure's title (default: names the map kind).
        alpha: opacity of the maps over the film.
        dpi: resolution.

    Returns:
        an :class:`AnomalyFigure` with the path and the token AUROCs shown in the titles.

    Raises:
        ValueError: on an unknown ``map_kind`` or ``layout``, lists of different lengths or empty, shapes that do not
            match, non-finite values.
    """
    if map_kind not in MAP_KINDS:
        raise ValueError(f"plot_anomaly_cases: map_kind must be one of {sorted(MAP_KINDS)}, got {map_kind!r}.")
    if layout not in ("yx", "xy"):
        raise ValueError(f"plot_anomaly_cases: layout must be 'yx' or 'xy', got {layout!r}.")
    count = len(lesioned_images)
    if count == 0 or len(lesioned_maps) != count or len(lesion_masks) != count:
        raise ValueError(
            "plot_anomaly_cases: lesioned_images, lesioned_maps and lesion_masks must be non-empty and equally long, "
            f"got {len(lesioned_images)}, {len(lesioned_maps)}, {len(lesion_masks)}."
        )
    if titles is not None and len(titles) != count:
        raise ValueError(f"plot_anomaly_cases: {len(titles)} titles for {count} cases.")
    clean = _array(clean_image, "clean_image")
    base = _array(clean_map, "clean_map")
    grid = base.shape
    films, maps, masks = [], [], []
    for i in range(count):
        films.append(_array(lesioned_images[i], f"lesioned_images[{i}]"))
        maps.append(_array(lesioned_maps[i], f"lesioned_maps[{i}]"))
        masks.append(_array(lesion_masks[i], f"lesion_masks[{i}]"))
        if films[i].shape != clean.shape or masks[i].shape != clean.shape:
            raise ValueError(
                f"plot_anomaly_cases: case {i}: image {films[i].shape} and mask {masks[i].shape} must have the clean "
                f"image's shape {clean.shape}."
            )
        if maps[i].shape != grid:
            raise ValueError(f"plot_anomaly_cases: case {i}: map {maps[i].shape} and clean map {grid} differ.")
    abnormal = [_abnormal_tokens(m, grid, patch_threshold, i) for i, m in enumerate(masks)]
    differences = [m - base for m in maps]
    result = AnomalyFigure(
        Path(path),
        map_kind,
        [token_auroc(m, a) for m, a in zip(maps, abnormal)],
        [token_auroc(d, a) for d, a in zip(differences, abnormal)],
        [int(a.sum()) for a in abnormal],
        int(np.prod(grid)),
    )

    def shown(x: np.ndarray) -> np.ndarray:
        return x.T if layout == "xy" else x

    kind = MAP_KINDS[map_kind]
    values = np.concatenate([base.ravel(), *(m.ravel() for m in maps)])
    low, high = (0.0, 1.0) if map_kind == "lesion_probability" else (min(0.0, values.min()), values.max())
    high = high if high > low else low + 1e-6
    spread = max(float(max(np.abs(d).max() for d in differences)), 1e-6)
    grey = (float(min(clean.min(), *(f.min() for f in films))), float(max(clean.max(), *(f.max() for f in films))))

    fig = Figure(figsize=(12.6, 3.7 * (count + 1)))
    axes = fig.subplots(count + 1, 3, squeeze=False)

    def panel(ax: Any, film: np.ndarray, overlay: np.ndarray | None, cmap: str, vmin: float, vmax: float, label: str):
        ax.imshow(shown(film), cmap="gray", vmin=grey[0], vmax=grey[1])
        if overlay is not None:
            image = ax.imshow(shown(_upsample(overlay, film.shape)), cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha)
            bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
            bar.set_label(label, fontsize=8)
            bar.ax.tick_params(labelsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    def outline(ax: Any, mask: np.ndarray) -> None:
        if (mask > 0).any() and not (mask > 0).all():
            ax.contour(shown((mask > 0).astype(float)), levels=[0.5], colors=OUTLINE, linewidths=1.0)

    panel(axes[0, 0], clean, None, "", 0, 1, "")
    axes[0, 0].set_title("clean film (no lesion)", fontsize=9)
    panel(axes[0, 1], clean, base, "inferno", low, high, kind)
    axes[0, 1].set_title(f"{kind}\non the clean film (subtracted below)", fontsize=9)
    axes[0, 2].set_axis_off()
    scored = [v for v in result.difference_auroc if v is not None]
    raw = [v for v in result.map_auroc if v is not None]
    summary = (
        f"map: {kind}\n\n"
        f"cyan: outline of the synthetic lesion mask\n\n"
        f"token AUROC: how well a map ranks the tokens the\nlesion covers above the others "
        f"(0.5 = chance, 1 = perfect)\n\n"
        f"lesioned - clean: the map on the lesioned film\nminus the map on the clean film above\n\n"
        + (
            f"mean over the {len(raw)} cases: map {np.mean(raw):.3f},\nlesioned - clean {np.mean(scored):.3f}"
            if raw and scored
            else ""
        )
    )
    axes[0, 2].text(0.0, 0.95, summary, va="top", ha="left", fontsize=9, transform=axes[0, 2].transAxes)
    for i in range(count):
        name = titles[i] if titles is not None else f"case {i}"
        row = axes[i + 1]
        panel(row[0], films[i], None, "", 0, 1, "")
        outline(row[0], masks[i])
        row[0].set_title(f"{name}\n{result.abnormal_tokens[i]} of {result.num_tokens} tokens abnormal", fontsize=9)
        panel(row[1], films[i], maps[i], "inferno", low, high, kind)
        outline(row[1], masks[i])
        row[1].set_title(f"{kind}\n{_auroc_text(result.map_auroc[i])}", fontsize=9)
        panel(row[2], films[i], differences[i], "RdBu_r", -spread, spread, "lesioned - clean")
        outline(row[2], masks[i])
        row[2].set_title(f"lesioned - clean\n{_auroc_text(result.difference_auroc[i])}", fontsize=9)
    result.titles = [[ax.get_title() for ax in row] for row in axes]
    fig.suptitle(suptitle or f"Label-free anomaly maps: {kind}", fontsize=11)
    fig.tight_layout()
    result.path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(result.path, dpi=dpi)
    return result


@torch.no_grad()
def write_anomaly_figure(
    model: torch.nn.Module,
    image: ArrayLike,
    path: str | os.PathLike,
    seeds: Sequence[int] = (0, 1, 2),
    lesion: Any = None,
    network: str = "teacher",
    temperature: float = 0.1,
    layout: str = "xy",
    name: str | None = None,
) -> AnomalyFigure:
    """Add synthetic lesions to a prepared film with each seed, compute the token anomaly maps of the clean and the
    lesioned films with ``model`` and save :func:`plot_anomaly_cases`.

    The map is :func:`monai_afire.inferers.token_outputs`'s ``anomaly`` for the chosen branch; its kind is the
    output's ``anomaly_kind`` when it says, else the lesion-prototype probability.

    Args:
        model: a pre-trained :class:`~monai_afire.networks.AFiRe` model (run in eval mode, put back afterwards).
        image: the prepared film, (1, H, W) in [0, 1] (e.g. ``radiograph_transforms(S)({"image": file})["image"]``).
        path: output file.
        seeds: one case per seed of the lesion transform.
        lesion: a dictionary lesion transform with keys ``image`` -> ``image``, ``clean``, ``lesion_mask``
            (default ``RandSyntheticLesiond(keys="image")``); its random state is set from each seed.
        network: the branch that reads the films, ``"teacher"`` (kept after pre-training) or ``"student"``.
        temperature: the training temperature of the prototype logits.
        layout: ``"xy"`` for films loaded by MONAI (shown transposed, upright), ``"yx"`` otherwise.
        name: the film's name, in the figure's title.
    """
    from monai_afire.inferers import token_outputs
    from monai_afire.transforms import RandSyntheticLesiond
    from monai_afire.utils import unwrap_model

    if not seeds:
        raise ValueError("write_anomaly_figure: seeds must name at least one case.")
    film = torch.as_tensor(image.as_tensor() if hasattr(image, "as_tensor") else image).float()
    if film.ndim != 3 or film.shape[0] != 1:
        raise ValueError(f"write_anomaly_figure: image must be a prepared film (1, H, W), got {tuple(film.shape)}.")
    lesion = RandSyntheticLesiond(keys="image") if lesion is None else lesion
    cases = [lesion.set_random_state(int(s))({"image": film.clone()}) for s in seeds]
    batch = torch.stack([film] + [torch.as_tensor(c["image"]).float() for c in cases])
    afire = unwrap_model(model)
    was_training = afire.training
    afire.eval()
    try:
        outputs = token_outputs(model, batch, temperature=temperature, network=network)
    finally:
        afire.train(was_training)
    maps = outputs["anomaly"].float().cpu()
    kind = str(outputs.get("anomaly_kind", "lesion_probability"))
    title = f"Label-free anomaly maps ({network}): {MAP_KINDS.get(kind, kind)}"
    return plot_anomaly_cases(
        path,
        film[0],
        maps[0],
        [torch.as_tensor(c["image"])[0] for c in cases],
        list(maps[1:]),
        [torch.as_tensor(c["lesion_mask"])[0] for c in cases],
        map_kind=kind,
        titles=[f"synthetic lesions, seed {s}" for s in seeds],
        layout=layout,
        suptitle=title if name is None else f"{title}\n{name}",
    )
