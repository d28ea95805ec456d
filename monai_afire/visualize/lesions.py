"""Gallery figure of synthetic lesions: the clean film, the lesioned film, and the lesion mask over the film."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["lesion_gallery"]

ImageLike = np.ndarray | torch.Tensor


def _to_2d(image: ImageLike, name: str, index: int, transpose: bool) -> np.ndarray:
    """A (H, W), (C, H, W) or (C, H, W, D) image as a 2-D array (first channel, middle slice of D)."""
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 3:
        array = array[0]
    elif array.ndim == 4:
        array = array[0, ..., array.shape[-1] // 2]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"lesion_gallery: {name}[{index}] must be (H, W), (C, H, W) or (C, H, W, D), got shape {image.shape}."
        )
    return array.T if transpose else array


def lesion_gallery(
    images: Sequence[ImageLike] | ImageLike,
    masks: Sequence[ImageLike] | ImageLike,
    lesioned: Sequence[ImageLike] | ImageLike,
    path: str | os.PathLike,
    titles: Sequence[str] | None = None,
    transpose: bool = False,
    dpi: int = 100,
) -> Path:
    """Save a PNG grid with one row per sample and the columns clean film / lesioned film / lesion mask on the film.

    The clean and the lesioned film of a row share one grey scale, so the added opacity shows as it is. The third
    panel is the lesioned film again with the lesion mask laid over it (the added intensity in colour, with a colour
    bar, transparent where nothing was added) and the mask's outline, so one sees where each blob lies on the
    anatomy. The first channel is shown, and the middle slice of 3-D images.

    Args:
        images: clean images, a sequence of (H, W), (C, H, W) or (C, H, W, D) arrays/tensors, or a batch tensor.
        masks: lesion masks, same layout.
        lesioned: lesioned images, same layout.
        path: output PNG file; its folder is created.
        titles: optional row labels (one per sample).
        transpose: show each image transposed; use it for images loaded by MONAI's readers (first axis = width),
            e.g. from ``radiograph_transforms``, so films appear upright.
        dpi: resolution of the saved figure.

    Returns:
        the path of the written file.

    Raises:
        ValueError: when the three inputs (and titles) differ in length, are empty, or an image has a bad shape.
    """
    path = Path(path)
    fig = _gallery_figure(images, masks, lesioned, titles, transpose)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _gallery_figure(
    images: Sequence[ImageLike] | ImageLike,
    masks: Sequence[ImageLike] | ImageLike,
    lesioned: Sequence[ImageLike] | ImageLike,
    titles: Sequence[str] | None,
    transpose: bool,
) -> Figure:
    """The figure of :func:`lesion_gallery` (checked input, not saved)."""
    count = len(images)
    if count == 0 or len(masks) != count or len(lesioned) != count:
        raise ValueError(
            f"lesion_gallery: images, masks and lesioned must be non-empty and equally long, "
            f"got {len(images)}, {len(masks)}, {len(lesioned)}."
        )
    if titles is not None and len(titles) != count:
        raise ValueError(f"lesion_gallery: got {len(titles)} titles for {count} samples.")
    fig = Figure(figsize=(7.5, 2.6 * count))  # no pyplot: works with any backend, nothing left open
    axes = fig.subplots(count, 3, squeeze=False)
    for row in range(count):
        clean = _to_2d(images[row], "images", row, transpose)
        mask = _to_2d(masks[row], "masks", row, transpose)
        out = _to_2d(lesioned[row], "lesioned", row, transpose)
        if mask.shape != clean.shape or out.shape != clean.shape:
            raise ValueError(
                f"lesion_gallery: row {row}: images {clean.shape}, masks {mask.shape} and lesioned {out.shape} "
                "must have one shape."
            )
        low = float(min(clean.min(), out.min()))
        high = float(max(clean.max(), out.max()))
        high = high if high > low else low + 1.0
        axes[row, 0].imshow(clean, cmap="gray", vmin=low, vmax=high)
        axes[row, 1].imshow(out, cmap="gray", vmin=low, vmax=high)
        axes[row, 2].imshow(out, cmap="gray", vmin=low, vmax=high)
        lesion = mask > 0
        shown = axes[row, 2].imshow(
            np.ma.masked_where(~lesion, mask), cmap="autumn", vmin=0.0, vmax=max(float(mask.max()), 1e-6), alpha=0.45
        )
        if lesion.any() and not lesion.all():
            axes[row, 2].contour(lesion.astype(np.float32), levels=[0.5], colors="cyan", linewidths=0.8)
        bar = fig.colorbar(shown, ax=axes[row, 2], fraction=0.046, pad=0.04)
        bar.set_label("added intensity", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        for col, name in enumerate(("clean film", "lesioned film", "lesion mask on the film")):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(name, fontsize=10)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row])
    fig.tight_layout()
    return fig
