"""Scatter plot of a 2-D token embedding (e.g. t-SNE) coloured by anatomy label."""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["plot_token_embedding"]


def plot_token_embedding(
    embedding_2d: np.ndarray,
    labels: np.ndarray,
    label_names: Mapping[int, str] | None = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    point_size: float = 4.0,
) -> Axes:
    """Scatter a 2-D embedding (N, 2), one colour per anatomy label, with a legend.

    Use with ``cohesion_metrics(..., tsne=True)``: pass its ``embedding_2d`` and ``embedding_labels``.

    Args:
        embedding_2d: (N, 2) coordinates.
        labels: (N,) integer anatomy labels.
        label_names: optional names of the labels for the legend.
        path: when given, the figure is saved there (and closed).
        title: axes title.
        ax: axes to draw on; a new figure when None.
        point_size: marker size.
    """
    xy = np.asarray(embedding_2d, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != y.shape[0]:
        raise ValueError(f"embedding_2d {xy.shape} must be (N, 2) with N = len(labels) = {y.shape[0]}.")
    if ax is None:
        ax = Figure(figsize=(5, 5)).add_subplot()
    classes = np.unique(y)
    cmap = matplotlib.colormaps["tab20" if len(classes) > 10 else "tab10"]
    for i, c in enumerate(classes):
        sel = y == c
        name = label_names.get(int(c), str(c)) if label_names is not None else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, color=cmap(i % cmap.N), label=name)
    ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False, ncol=1 + len(classes) // 12)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if path is not None:
        fig = ax.figure
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return ax
