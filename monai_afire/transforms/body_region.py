"""Locate the body in a radiograph: Otsu threshold, largest connected region, its centre."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["BodyRegion", "otsu_threshold", "find_body_region"]


@dataclass(frozen=True)
class BodyRegion:
    """Where the body lies in an image, found on a coarse grid.

    Attributes:
        centre: centre of the body in full-resolution pixel coordinates (one float per spatial axis). The image
            centre when no body was found.
        foreground: bool array on the coarse grid (every ``stride``-th pixel), True on the body; None when no body
            was found (constant image or Otsu found no foreground).
        stride: step between coarse grid points, in pixels.
    """

    centre: tuple[float, ...]
    foreground: np.ndarray | None
    stride: int


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float | None:
    """Otsu's threshold of an array of values, computed on a histogram.

    Args:
        values: array of finite values (any shape).
        bins: number of histogram bins between the minimum and the maximum.

    Returns:
        the threshold t that maximises the between-class variance of ``values <= t`` and ``values > t`` (the middle
        of the gap when several do, as for two modes separated by empty bins);
        None when the values are constant (no threshold separates them).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    if not high > low:
        return None
    width = (high - low) / bins
    index = np.minimum(((values - low) / width).astype(np.int64), bins - 1)
    hist = np.bincount(index, minlength=bins).astype(np.float64)
    centres = low + width * (np.arange(bins) + 0.5)
    weight_low = np.cumsum(hist)[:-1]
    weight_high = values.size - weight_low
    cumulative = np.cumsum(hist * centres)
    mean_low = cumulative[:-1] / weight_low
    mean_high = (cumulative[-1] - cumulative[:-1]) / weight_high
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    between[(weight_low == 0) | (weight_high == 0)] = -1.0
    best = np.flatnonzero(between == between.max())
    return low + width * (int(best[len(best) // 2]) + 1)  # the middle of a plateau of empty bins


def find_body_region(image: np.ndarray, grid_size: int = 64) -> BodyRegion:
    """Find the body of a channel-first image: Otsu foreground, largest connected region, its centre of mass.

    The search runs on a coarse grid of about ``grid_size`` points along the longest axis, so it costs little even
    for large films; channels are averaged. Bright pixels are foreground (radiograph convention after MONOCHROME1
    inversion: body brighter than air).

    Args:
        image: array (C, H, W) or (C, H, W, D) of finite values.
        grid_size: coarse grid points along the longest spatial axis.

    Returns:
        a :class:`BodyRegion`; its centre falls back to the image centre for a constant image or when Otsu finds no
        foreground.
    """
    spatial: Sequence[int] = image.shape[1:]
    stride = max(1, math.ceil(max(spatial) / grid_size))
    coarse = np.asarray(image[(slice(None),) + (slice(None, None, stride),) * len(spatial)], dtype=np.float32)
    coarse = coarse.mean(axis=0) if coarse.shape[0] > 1 else coarse[0]
    fallback = BodyRegion(tuple((s - 1) / 2.0 for s in spatial), None, stride)
    threshold = otsu_threshold(coarse)
    if threshold is None:
        return fallback
    labels, count = ndimage.label(coarse > threshold)
    if count == 0:
        return fallback
    largest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    foreground = labels == largest
    points = np.argwhere(foreground)
    centre = tuple(float(c) * stride for c in points.mean(axis=0))
    return BodyRegion(centre, foreground, stride)
