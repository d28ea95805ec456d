"""Localisation scores of heat maps against ground-truth boxes and masks (pointing game, box IoU hits, pixel AUROC)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.data.box_utils import box_iou
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from .classification import BootstrapInterval, _check_bootstrap_args, _group_index, _interval

__all__ = [
    "resized_boxes",
    "check_boxes",
    "box_from_map",
    "pointing_game",
    "box_hits",
    "pixel_auroc",
    "localization_case_scores",
    "localization_scores",
    "localization_summary",
    "bootstrap_mean_difference",
    "localization_markdown",
    "write_localization_markdown",
]

DEFAULT_IOU_THRESHOLDS = (0.1, 0.3, 0.5)
LAYOUTS = ("yx", "xy")


def _map2d(heatmap: np.ndarray | torch.Tensor, name: str = "heatmap", layout: str = "yx") -> np.ndarray:
    """A 2-D float array indexed [y, x] (rows, columns); ``layout="xy"`` transposes MONAI-convention arrays."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    if isinstance(heatmap, torch.Tensor):
        heatmap = heatmap.detach().cpu().float().numpy()
    arr = np.asarray(heatmap, dtype=np.float64)
    arr = arr.reshape(arr.shape[-2:]) if arr.ndim > 2 and int(np.prod(arr.shape[:-2])) == 1 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D map (H, W) (or (1, H, W)), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr.T if layout == "xy" else arr


def resized_boxes(
    boxes: Sequence | np.ndarray, original_size: Sequence[int], image_size: int, name: str = "boxes"
) -> np.ndarray:
    """Map boxes from pixels of the original film to the (S, S) grid of ``radiograph_transforms(image_size=S)``.

    That preparation resizes the longest side to S (aspect kept, sizes rounded as MONAI's ``Resize`` does) and pads
    the other side symmetrically (as MONAI's ``SpatialPad``); boxes follow the same scaling and offset.

    Args:
        boxes: (N, 4) ``[x0, y0, x1, y1]`` in pixels of the original image.
        original_size: (width, height) of the original image; for an image prepared by ``radiograph_transforms``
            this is ``image.meta["spatial_shape"]`` (MONAI's first spatial axis runs along the width).
        image_size: S.
        name: how the boxes are named in error messages.

    Returns:
        float64 (N, 4) boxes in the S x S grid.
    """
    width, height = (int(v) for v in original_size)
    gt = check_boxes(boxes, (height, width), name)
    scale = image_size / max(width, height)
    new = [int(round(s * scale)) for s in (width, height)]
    offset = [(image_size - n) // 2 for n in new]
    factor = np.array([new[0] / width, new[1] / height] * 2)
    return gt * factor + np.array(offset * 2, dtype=np.float64)


def check_boxes(
    boxes: Sequence | np.ndarray | torch.Tensor, image_shape: Sequence[int], name: str = "boxes"
) -> np.ndarray:
    """Validate pixel boxes ``[x0, y0, x1, y1]`` against an image of shape (H, W).

    Args:
        boxes: (N, 4) boxes, x along the image columns and y along its rows, x0 < x1 and y0 < y1.
        image_shape: (H, W) of the image the boxes are drawn on.
        name: how the boxes are named in error messages (e.g. a file name).

    Returns:
        float64 array (N, 4).

    Raises:
        ValueError: when a box is malformed, empty or reaches outside the image.
    """
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    h, w = (float(v) for v in image_shape[-2:])
    for box in arr:
        x0, y0, x1, y1 = box
        if not np.all(np.isfinite(box)) or x0 >= x1 or y0 >= y1:
            raise ValueError(f"{name}: box {box.tolist()} is not [x0, y0, x1, y1] with x0 < x1 and y0 < y1.")
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise ValueError(
                f"{name}: box {box.tolist()} reaches outside the image of {int(w)} x {int(h)} pixels (width x height);"
                " boxes must be in pixels of the map they are scored on (rescale them with the image)."
            )
    return arr


def box_from_map(heatmap: np.ndarray | torch.Tensor, threshold: float = 0.5, layout: str = "yx") -> np.ndarray | None:
    """Bounding box ``[x0, y0, x1, y1]`` of the largest connected region of a thresholded map.

    The map is min-max normalised first, so ``threshold`` is a fraction of its range. Returns None for a constant
    map (nothing is localised). ``layout`` says how the map is indexed: ``"yx"`` (rows first, as images are
    displayed) or ``"xy"`` (MONAI's reader convention, first axis along the width).
    """
    arr = _map2d(heatmap, layout=layout)
    lo, hi = arr.min(), arr.max()
    if hi <= lo:
        return None
    regions, count = ndimage.label((arr - lo) / (hi - lo) >= threshold)
    sizes = np.bincount(regions.ravel(), minlength=count + 1)[1:]
    rows, cols = np.nonzero(regions == int(np.argmax(sizes)) + 1)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)


def pointing_game(
    heatmap: np.ndarray | torch.Tensor, boxes: Sequence | np.ndarray, name: str = "boxes", layout: str = "yx"
) -> bool:
    """True when the map's maximum (the first one, for ties) lies in one of the ground-truth boxes.

    ``layout``: ``"yx"`` for maps indexed [row, column], ``"xy"`` for MONAI-convention maps [x, y].
    """
    arr = _map2d(heatmap, layout=layout)
    gt = check_boxes(boxes, arr.shape, name)
    y, x = np.unravel_index(int(np.argmax(arr)), arr.shape)
    px, py = x + 0.5, y + 0.5  # pixel centre
    return bool(np.any((gt[:, 0] <= px) & (px <= gt[:, 2]) & (gt[:, 1] <= py) & (py <= gt[:, 3])))


def box_hits(
    heatmap: np.ndarray | torch.Tensor,
    boxes: Sequence | np.ndarray,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    map_threshold: float = 0.5,
    name: str = "boxes",
    layout: str = "yx",
) -> dict[float, bool]:
    """Whether the box of the thresholded map overlaps a ground-truth box with IoU >= each threshold."""
    arr = _map2d(heatmap, layout=layout)
    gt = check_boxes(boxes, arr.shape, name)
    pred = box_from_map(arr, map_threshold)
    best = 0.0 if pred is None or len(gt) == 0 else float(np.max(box_iou(pred[None], gt)))
    return {float(t): best >= t for t in iou_thresholds}


def pixel_auroc(heatmap: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor) -> float:
    """AUROC of map values for telling mask pixels (> 0) from the rest; NaN when the mask is empty or full."""
    arr = _map2d(heatmap)
    m = _map2d(mask, "mask") > 0
    if m.shape != arr.shape:
        raise ValueError(f"mask shape {m.shape} does not match the heat map shape {arr.shape}.")
    if m.all() or not m.any():
        return math.nan
    return float(roc_auc_score(m.ravel(), arr.ravel()))


def localization_case_scores(
    maps: Sequence[np.ndarray | torch.Tensor],
    boxes: Sequence[Sequence | np.ndarray],
    findings: Sequence[str],
    masks: Sequence[np.ndarray | torch.Tensor | None] | None = None,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    map_threshold: float = 0.5,
    names: Sequence[str] | None = None,
    layout: str = "yx",
) -> list[dict[str, float]]:
    """Scores of each case (the rows :func:`localization_scores` averages), in the order of ``maps``.

    Each row holds ``pointing_game`` (0 or 1), ``hit@<t>`` (0 or 1) per IoU level and ``pixel_auroc`` (NaN without a
    mask); arguments and errors as :func:`localization_scores`. Use the rows for paired comparisons of two maps on
    the same cases (:func:`bootstrap_mean_difference`).
    """
    if not (len(maps) == len(boxes) == len(findings)):
        raise ValueError(f"maps ({len(maps)}), boxes ({len(boxes)}) and findings ({len(findings)}) must match.")
    if masks is not None and len(masks) != len(maps):
        raise ValueError(f"masks ({len(masks)}) and maps ({len(maps)}) must match.")
    rows = []
    for i, (heatmap, gt, finding) in enumerate(zip(maps, boxes, findings)):
        label = f"case {i} ({names[i]}, {finding})" if names is not None else f"case {i} ({finding})"
        if len(gt) == 0:
            raise ValueError(f"{label}: no ground-truth box to score the map against.")
        heatmap = _map2d(heatmap, label, layout)
        row = {"pointing_game": float(pointing_game(heatmap, gt, label))}
        for t, hit in box_hits(heatmap, gt, iou_thresholds, map_threshold, label).items():
            row[f"hit@{t:g}"] = float(hit)
        mask = None if masks is None else masks[i]
        row["pixel_auroc"] = math.nan if mask is None else pixel_auroc(heatmap, _map2d(mask, label, layout))
        rows.append(row)
    return rows


def localization_scores(
    maps: Sequence[np.ndarray | torch.Tensor],
    boxes: Sequence[Sequence | np.ndarray],
    findings: Sequence[str],
    masks: Sequence[np.ndarray | torch.Tensor | None] | None = None,
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
    map_threshold: float = 0.5,
    names: Sequence[str] | None = None,
    layout: str = "yx",
) -> dict[str, dict[str, float]]:
    """Score heat maps per finding: pointing game, box hit rates at each IoU and (with masks) pixel AUROC.

    One case is one (image, finding) pair: ``maps[i]`` is the map computed for ``findings[i]`` (e.g. the Grad-CAM of
    that class) and ``boxes[i]`` holds that finding's ground-truth boxes in the same pixel grid as the map.

    Args:
        maps: heat maps (H, W), one per case.
        boxes: ground-truth boxes per case, (N_i, 4) ``[x0, y0, x1, y1]``.
        findings: finding name per case.
        masks: optional ground-truth masks per case (None entries skipped) for the pixel AUROC.
        iou_thresholds: IoU levels of the box hit rates.
        map_threshold: fraction of the map's range above which pixels form the predicted region.
        names: optional case names (file names) used in error messages.
        layout: ``"yx"`` for maps and masks indexed [row, column]; ``"xy"`` for MONAI-convention arrays (first
            spatial axis along the image width, as ``radiograph_transforms`` loads films). Boxes are always
            ``[x0, y0, x1, y1]`` with x along the width.

    Returns:
        ``{finding: {"cases": n, "pointing_game": rate, "hit@0.1": rate, ..., "pixel_auroc": mean}}`` and an
        ``"all"`` row over every case; ``pixel_auroc`` is NaN where no mask is defined.
    """
    rows = localization_case_scores(maps, boxes, findings, masks, iou_thresholds, map_threshold, names, layout)
    return localization_summary(rows, findings)


def localization_summary(rows: Sequence[dict[str, float]], findings: Sequence[str]) -> dict[str, dict[str, float]]:
    """Average per-case rows (:func:`localization_case_scores`) per finding and over all cases, NaN values left out:
    the table of :func:`localization_scores`."""
    if len(rows) != len(findings):
        raise ValueError(f"rows ({len(rows)}) and findings ({len(findings)}) must match.")
    per_case: dict[str, list[dict[str, float]]] = {}
    for row, finding in zip(rows, findings):
        per_case.setdefault(str(finding), []).append(row)
        per_case.setdefault("all", []).append(row)
    out: dict[str, dict[str, float]] = {}
    for finding in sorted(k for k in per_case if k != "all") + (["all"] if per_case else []):
        rows = per_case[finding]
        scores: dict[str, float] = {"cases": float(len(rows))}
        for key in rows[0]:
            values = np.array([r[key] for r in rows])
            values = values[~np.isnan(values)]
            scores[key] = float(values.mean()) if values.size else math.nan
        out[finding] = scores
    return out


def bootstrap_mean_difference(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    groups: np.ndarray | Sequence | torch.Tensor | None = None,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Paired bootstrap of ``mean(values_a) - mean(values_b)``: two methods scored on the same cases.

    For per-case scores such as the rows of :func:`localization_case_scores` (pixel AUROC, pointing game) of two
    maps on the same (image, finding) cases. Whole groups (patients) are resampled with replacement, the same draw
    for both methods; a case whose value is NaN in either method is left out (point and replicates alike).

    Args:
        values_a: score of method a per case, shape (N,).
        values_b: score of method b on the same cases, shape (N,).
        groups: patient id of each case, shape (N,); None resamples cases.
        num_samples: number of bootstrap replicates.
        confidence: confidence level in (0, 1).
        seed: seed of the resampling.

    Returns:
        :class:`~monai_afire.metrics.BootstrapInterval` ``(difference, low, high)`` (NaN when no case is defined).

    Raises:
        ValueError: values of different or bad shapes, bad groups, ``num_samples`` or ``confidence``.
    """
    _check_bootstrap_args(num_samples, confidence)
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"values_a {a.shape} and values_b {b.shape} must be 1-D, one value per case, and match.")
    group = _group_index(groups, a.shape[0])
    keep = ~(np.isnan(a) | np.isnan(b))
    diff, group = (a - b)[keep], group[keep]
    if diff.size == 0:
        return BootstrapInterval(math.nan, math.nan, math.nan, num_groups=0, confidence=confidence)
    _, group = np.unique(group, return_inverse=True)
    num_groups = int(group.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=int(num_samples))
    weights = counts[:, group].astype(np.float64)  # (B, N): times each case is drawn
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (weights @ diff) / weights.sum(1)
    low, high, used = _interval(reps, confidence)
    return BootstrapInterval(
        float(diff.mean()), low, high, num_groups=num_groups, num_replicates=used, confidence=confidence
    )


def localization_markdown(scores: dict[str, dict[str, float]], digits: int = 3, title: str | None = None) -> str:
    """Markdown table of :func:`localization_scores`: one row per finding, the ``all`` row last."""
    if not scores:
        raise ValueError("localization_markdown: no scores to tabulate.")
    keys = [k for k in next(iter(scores.values())) if k != "cases"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| finding | cases | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for finding, row in scores.items():
        cells = ["n/a" if math.isnan(row[k]) else f"{row[k]:.{digits}f}" for k in keys]
        label = f"**{finding}**" if finding == "all" else finding
        lines.append(f"| {label} | {int(row['cases'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_localization_markdown(
    scores: dict[str, dict[str, float]], path: str | os.PathLike, digits: int = 3, title: str | None = None
) -> str:
    """Write :func:`localization_markdown` to ``path`` (parent folders created) and return the text."""
    text = localization_markdown(scores, digits=digits, title=title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text
