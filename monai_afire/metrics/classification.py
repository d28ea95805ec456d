"""Multi-label classification scores: per-class AUROC, their mean and bootstrap confidence intervals."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

__all__ = ["AUROCResult", "multilabel_auroc", "auroc_markdown", "write_auroc_csv", "write_auroc_markdown"]


@dataclass
class AUROCResult:
    """Per-class AUROC with confidence intervals.

    Attributes:
        classes: class names, in column order.
        auroc: per-class AUROC; NaN where the class is undefined.
        ci_low: lower bound of each class's confidence interval (NaN when undefined or no bootstrap).
        ci_high: upper bound of each class's confidence interval.
        mean: mean AUROC over the defined classes (NaN when none is defined).
        mean_ci: (low, high) interval of the mean.
        undefined: names of the classes with no positive or no negative sample.
        num_samples: number of samples scored.
        confidence: confidence level of the intervals.
    """

    classes: list[str]
    auroc: list[float]
    ci_low: list[float]
    ci_high: list[float]
    mean: float
    mean_ci: tuple[float, float]
    undefined: list[str] = field(default_factory=list)
    num_samples: int = 0
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """Flat dict ``{class: auroc, ..., "mean": mean}`` (NaN for undefined classes)."""
        out = dict(zip(self.classes, self.auroc))
        out["mean"] = self.mean
        return out


def _as_array(x: np.ndarray | torch.Tensor | Sequence, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, C) or (N,), got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _defined(y: np.ndarray) -> np.ndarray:
    positives = y.sum(0)
    return (positives > 0) & (positives < y.shape[0])


def _aurocs(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    out = np.full(y.shape[1], np.nan)
    for c in np.flatnonzero(_defined(y)):
        out[c] = roc_auc_score(y[:, c], s[:, c])
    return out


def _rank_aurocs(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """All columns at once by the Mann-Whitney rank statistic (ties averaged; equal to scikit-learn's AUROC)."""
    ranks = rankdata(s, axis=0)
    pos = y.sum(0)
    neg = y.shape[0] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(0) - pos * (pos + 1) / 2.0) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return auc


def multilabel_auroc(
    y_true: np.ndarray | torch.Tensor,
    y_score: np.ndarray | torch.Tensor,
    classes: Sequence[str] | None = None,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AUROCResult:
    """Per-class AUROC (scikit-learn), mean AUROC and percentile bootstrap confidence intervals.

    A class whose labels hold no positive or no negative sample has no AUROC: it is reported as NaN,
    listed in ``undefined`` and left out of the mean. Bootstrap resamples (patients drawn with replacement)
    in which a class becomes single-valued are skipped for that class.

    Args:
        y_true: binary labels (N, C) (or (N,) for one class).
        y_score: scores or probabilities (N, C), any monotone scale.
        classes: class names; defaults to ``"class_0"``, ``"class_1"``, ...
        num_bootstrap: number of bootstrap resamples; 0 for no intervals.
        confidence: confidence level of the intervals, in (0, 1).
        seed: seed of the bootstrap resampling (same seed, same intervals).

    Raises:
        ValueError: on shape mismatch, non-binary labels, a wrong number of class names or a bad confidence.
    """
    y = _as_array(y_true, "y_true")
    s = _as_array(y_score, "y_score")
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and y_score {s.shape} must have the same shape.")
    if y.shape[0] == 0:
        raise ValueError("multilabel_auroc needs at least one sample.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must be binary (0 or 1); uncertain labels must be mapped before scoring.")
    names = [f"class_{i}" for i in range(y.shape[1])] if classes is None else [str(c) for c in classes]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} class names given for {y.shape[1]} label columns: {names}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if num_bootstrap < 0:
        raise ValueError(f"num_bootstrap must be >= 0, got {num_bootstrap}.")

    auroc = _aurocs(y, s)
    defined = ~np.isnan(auroc)
    mean = float(auroc[defined].mean()) if defined.any() else math.nan
    low = np.full(len(names), np.nan)
    high = np.full(len(names), np.nan)
    mean_ci = (math.nan, math.nan)
    if num_bootstrap > 0 and defined.any():
        rng = np.random.default_rng(seed)
        samples = np.full((num_bootstrap, len(names)), np.nan)
        for b in range(num_bootstrap):
            idx = rng.integers(0, y.shape[0], y.shape[0])
            samples[b] = _rank_aurocs(y[idx], s[idx])
        samples[:, ~defined] = np.nan
        alpha = (1.0 - confidence) / 2.0
        for c in np.flatnonzero(defined):
            col = samples[:, c][~np.isnan(samples[:, c])]
            if col.size:
                low[c], high[c] = np.quantile(col, [alpha, 1.0 - alpha])
        means = np.nanmean(samples[:, defined], axis=1) if np.any(~np.isnan(samples[:, defined])) else None
        if means is not None:
            means = means[~np.isnan(means)]
            mean_ci = tuple(float(v) for v in np.quantile(means, [alpha, 1.0 - alpha]))
    return AUROCResult(
        classes=names,
        auroc=[float(v) for v in auroc],
        ci_low=[float(v) for v in low],
        ci_high=[float(v) for v in high],
        mean=mean,
        mean_ci=mean_ci,
        undefined=[n for n, d in zip(names, defined) if not d],
        num_samples=int(y.shape[0]),
        confidence=confidence,
    )


def _fmt(v: float, digits: int) -> str:
    return "undefined" if math.isnan(v) else f"{v:.{digits}f}"


def _rows(result: AUROCResult) -> list[tuple[str, float, float, float]]:
    rows = list(zip(result.classes, result.auroc, result.ci_low, result.ci_high))
    rows.append(("mean", result.mean, *result.mean_ci))
    return rows


def auroc_markdown(result: AUROCResult, digits: int = 3, title: str | None = None) -> str:
    """Markdown table of an :class:`AUROCResult`: one row per class, then the mean; undefined classes noted."""
    pct = round(result.confidence * 100)
    lines = [f"### {title}", ""] if title else []
    lines += [f"| class | AUROC | {pct}% CI |", "|---|---:|---:|"]
    for name, auc, lo, hi in _rows(result):
        ci = "" if math.isnan(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
        label = f"**{name}**" if name == "mean" else name
        lines.append(f"| {label} | {_fmt(auc, digits)} | {ci} |")
    if result.undefined:
        lines += ["", f"Undefined (no positive or no negative sample): {', '.join(result.undefined)}."]
    lines += ["", f"{result.num_samples} samples."]
    return "\n".join(lines) + "\n"


def write_auroc_markdown(
    result: AUROCResult, path: str | os.PathLike, digits: int = 3, title: str | None = None
) -> str:
    """Write :func:`auroc_markdown` to ``path`` (parent folders created) and return the text."""
    text = auroc_markdown(result, digits=digits, title=title)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text


def write_auroc_csv(result: AUROCResult, path: str | os.PathLike) -> None:
    """Write columns ``class, auroc, ci_low, ci_high, defined`` (last row ``mean``) to a CSV file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    undefined = set(result.undefined)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "auroc", "ci_low", "ci_high", "defined"])
        for name, auc, lo, hi in _rows(result):
            writer.writerow([name, auc, lo, hi, int(name not in undefined and not math.isnan(auc))])
