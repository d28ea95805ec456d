"""Loss curves of a pre-training run, drawn from the rows of the loss-history CSV file that training writes."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_loss_curves", "read_loss_history"]

DEFAULT_KEYS = ("loss", "structure", "category", "restoration")


def plot_loss_curves(
    history: str | os.PathLike | Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    keys: Sequence[str] = DEFAULT_KEYS,
    x_key: str = "epoch",
    title: str | None = "AFiRe pre-training",
    dpi: int = 100,
) -> Path:
    """Plot each loss term against the epoch, one panel per term, and save the figure.

    Args:
        history: rows with ``x_key`` and the loss terms, or the CSV written by
            :class:`monai_afire.handlers.LossHistory`.
        path: output image (PNG/PDF by extension); its folder is created.
        keys: the terms to draw (those absent from the rows are skipped).
        x_key: the column on the x axis.
        title: figure title.
        dpi: resolution.

    Returns:
        the path of the figure.

    Raises:
        ValueError: no rows, or none of ``keys`` in them.
    """
    if isinstance(history, (str, os.PathLike)):
        history = read_loss_history(history)
    rows = list(history)
    if not rows:
        raise ValueError("plot_loss_curves: the history is empty.")
    present = [k for k in keys if k in rows[0]]
    if not present:
        raise ValueError(f"plot_loss_curves: none of {list(keys)} in the history columns {sorted(rows[0])}.")
    x = np.array([float(r.get(x_key, i + 1)) for i, r in enumerate(rows)])
    fig = Figure(figsize=(3.2 * len(present), 3.0))
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, key in zip(axes, present):
        ax.plot(x, [float(r[key]) for r in rows], marker="o", markersize=3)
        ax.set_title(key)
        ax.set_xlabel(x_key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def read_loss_history(path: str | Path) -> list[dict[str, float]]:
    """Rows of the CSV file of :class:`monai_afire.handlers.LossHistory` as dicts of floats (empty cells: NaN).

    Raises:
        ValueError: when the file is missing or has no ``epoch`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"read_loss_history: {path} does not exist.")
    with open(path, newline="") as f:
        rows = [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()} for r in csv.DictReader(f)]
    if rows and "epoch" not in rows[0]:
        raise ValueError(f"read_loss_history: {path} has no 'epoch' column.")
    return rows
