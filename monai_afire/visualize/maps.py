"""Figures of heat maps over radiographs with ground-truth and predicted boxes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from monai_afire.metrics.localization import box_from_map, check_boxes

__all__ = ["plot_map_overlay", "save_map_gallery"]


def _image2d(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    arr = np.squeeze(np.asarray(x, dtype=np.float64))
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D image (H, W) (singleton axes allowed), got shape {np.shape(x)}.")
    return arr


def plot_map_overlay(
    image: np.ndarray | torch.Tensor,
    heatmap: np.ndarray | torch.Tensor,
    boxes: Sequence | np.ndarray = (),
    map_threshold: float | None = 0.5,
    title: str | None = None,
    ax: Axes | None = None,
    alpha: float = 0.45,
    cmap: str = "jet",
    layout: str = "yx",
) -> Axes:
    """Draw a heat map over an image, the ground-truth boxes (green) and the thresholded map's box (red, dashed).

    Args:
        image: (H, W) radiograph (or with singleton axes).
        heatmap: (H, W) map on the same grid.
        boxes: ground-truth ``[x0, y0, x1, y1]`` boxes in pixels of the image.
        map_threshold: threshold of :func:`~monai_afire.metrics.box_from_map` for the predicted box; None for none.
        title: axes title.
        ax: axes to draw on; a new figure when None.
        alpha: opacity of the heat map.
        cmap: colour map of the heat map.
        layout: ``"yx"`` for arrays indexed [row, column]; ``"xy"`` for MONAI-convention arrays (first axis along
            the width, as ``radiograph_transforms`` loads films), transposed for display.
    """
    if layout not in ("yx", "xy"):
        raise ValueError(f"plot_map_overlay: layout must be 'yx' or 'xy', got {layout!r}.")
    img = _image2d(image, "image")
    hm = _image2d(heatmap, "heatmap")
    if layout == "xy":
        img, hm = img.T, hm.T
    if img.shape != hm.shape:
        raise ValueError(f"image {img.shape} and heatmap {hm.shape} must have the same shape.")
    gt = check_boxes(boxes, img.shape, "plot_map_overlay boxes")
    if ax is None:
        ax = Figure(figsize=(4, 4)).add_subplot()
    ax.imshow(img, cmap="gray")
    ax.imshow(hm, cmap=cmap, alpha=alpha)
    for x0, y0, x1, y1 in gt:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
    if map_threshold is not None:
        pred = box_from_map(hm, map_threshold)
        if pred is not None:
            x0, y0, x1, y1 = pred
            ax.add_patch(
                Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="red", linestyle="--", lw=1.5)
            )
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return ax


def save_map_gallery(
    path: str | os.PathLike,
    images: Sequence[np.ndarray | torch.Tensor],
    heatmaps: Sequence[np.ndarray | torch.Tensor],
    boxes: Sequence[Sequence] | None = None,
    titles: Sequence[str] | None = None,
    columns: int = 4,
    map_threshold: float | None = 0.5,
    dpi: int = 100,
    layout: str = "yx",
) -> str:
    """Save a grid of :func:`plot_map_overlay` panels to ``path`` (PNG/PDF by extension) and return the path."""
    if len(images) != len(heatmaps) or len(images) == 0:
        raise ValueError(f"save_map_gallery: {len(images)} images and {len(heatmaps)} heat maps (need equal, > 0).")
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    fig = Figure(figsize=(3 * columns, 3 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= len(images):
            ax.set_axis_off()
            continue
        plot_map_overlay(
            images[i],
            heatmaps[i],
            boxes[i] if boxes is not None else (),
            map_threshold=map_threshold,
            title=titles[i] if titles is not None else None,
            ax=ax,
            layout=layout,
        )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return os.fspath(path)
