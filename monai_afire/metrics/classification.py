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

__all__ = [
    "AUROCResult",
    "BootstrapInterval",
    "multilabel_auroc",
    "mean_auroc",
    "bootstrap_mean_auroc",
    "bootstrap_auroc_difference",
    "per_class_bootstrap",
    "auroc_markdown",
    "write_auroc_csv",
    "write_auroc_markdown",
]


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


class BootstrapInterval(tuple):
    """A bootstrap estimate ``(point, low, high)``: a plain 3-tuple (``point, low, high = result`` works) that also
    carries what went into it.

    Attributes:
        point: the estimate on the full data (first item).
        low: lower bound of the percentile interval (second item); NaN when no replicate was defined.
        high: upper bound of the percentile interval (third item).
        undefined: names of the classes left out of every mean because their labels hold one value only.
        num_groups: number of resampling units (patients, or images when no groups were given).
        num_seeds: number of seeds of each scored arm (one value per arm).
        num_replicates: replicates that produced a value (a replicate in which no class has both labels has none).
        confidence: confidence level of the interval.
    """

    def __new__(
        cls,
        point: float,
        low: float,
        high: float,
        undefined: Sequence[str] = (),
        num_groups: int = 0,
        num_seeds: Sequence[int] = (1,),
        num_replicates: int = 0,
        confidence: float = 0.95,
    ) -> BootstrapInterval:
        obj = super().__new__(cls, (float(point), float(low), float(high)))
        obj.undefined = [str(u) for u in undefined]
        obj.num_groups = int(num_groups)
        obj.num_seeds = tuple(int(s) for s in num_seeds)
        obj.num_replicates = int(num_replicates)
        obj.confidence = float(confidence)
        return obj

    @property
    def point(self) -> float:
        return self[0]

    @property
    def low(self) -> float:
        return self[1]

    @property
    def high(self) -> float:
        return self[2]

    def __reduce__(self):
        return (
            self.__class__,
            (*self, self.undefined, self.num_groups, self.num_seeds, self.num_replicates, self.confidence),
        )

    def __repr__(self) -> str:
        return (
            f"BootstrapInterval(point={self[0]:.4f}, low={self[1]:.4f}, high={self[2]:.4f}, "
            f"undefined={self.undefined}, num_groups={self.num_groups}, num_seeds={self.num_seeds})"
        )


def _binary_labels(y_true: np.ndarray | torch.Tensor | Sequence, name: str = "y_true") -> np.ndarray:
    y = _as_array(y_true, name)
    if y.shape[0] == 0:
        raise ValueError(f"{name} holds no sample.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name} must be binary (0 or 1); uncertain labels must be mapped before scoring.")
    return y


def _seed_scores(scores: np.ndarray | torch.Tensor | Sequence, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Scores as (S, N, C) float64; accepts (N, C), (N,) for one class, or (S, N, C)."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1 and shape[1] == 1:
        s = s[:, None]
    if s.ndim == 2:
        s = s[None]
    if s.ndim != 3 or s.shape[1:] != shape or s.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, C) = {shape} or (S, N, C) = (S, {shape[0]}, {shape[1]}) for S seeds, "
            f"got {s.shape}."
        )
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return s


def _group_index(groups: np.ndarray | Sequence | torch.Tensor | None, n: int) -> np.ndarray:
    """Integer group id in [0, G) of each of the n samples (each sample its own group when None)."""
    if groups is None:
        return np.arange(n)
    if isinstance(groups, torch.Tensor):
        groups = groups.detach().cpu().numpy()
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n:
        raise ValueError(f"groups must be one id (e.g. the patient) per sample, shape ({n},), got {g.shape}.")
    try:
        _, inverse = np.unique(g, return_inverse=True)
    except TypeError as err:
        raise ValueError(f"groups must be ids of one sortable type (all str or all int): {err}") from err
    return inverse.reshape(-1)


def _weighted_aurocs(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC of each class (C) for each row of sample weights (B, N): the Mann-Whitney statistic of the sample in
    which sample i appears ``w[b, i]`` times (ties count one half), equal to ``_rank_aurocs(y[idx], s[idx])`` for the
    index list ``idx`` with those multiplicities. NaN where a class has no positive or no negative weight. (B, C)."""
    num_rows, n = w.shape
    out = np.full((num_rows, y.shape[1]), np.nan)
    for c in range(y.shape[1]):
        order = np.argsort(s[:, c], kind="stable")
        sc, pos = s[order, c], y[order, c] > 0
        pos_idx = np.flatnonzero(pos)
        if pos_idx.size == 0 or pos_idx.size == n:
            continue
        ws = w[:, order]
        neg = np.where(pos, 0.0, ws)
        cum = np.cumsum(neg, axis=1)  # negative weight at or below each sorted position
        starts = np.r_[True, sc[1:] != sc[:-1]]
        first = np.flatnonzero(starts)  # first sorted position of each run of tied scores
        last = np.r_[first[1:], n] - 1
        block = (np.cumsum(starts) - 1)[pos_idx]
        below = cum[:, first[block]] - neg[:, first[block]]  # negatives strictly below each positive's score
        tied = cum[:, last[block]] - below  # negatives with the same score
        wpos = ws[:, pos_idx]
        npos, nneg = wpos.sum(1), cum[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (wpos * (below + 0.5 * tied)).sum(1) / (npos * nneg)
        auc[(npos == 0) | (nneg == 0)] = np.nan
        out[:, c] = auc
    return out


def _check_bootstrap_args(num_samples: int, confidence: float) -> None:
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")


def _seed_weights(rng: np.random.Generator, num_samples: int, num_seeds: int) -> np.ndarray:
    """(B, S) weights: the fraction of the S seeds drawn with replacement that are seed s."""
    draws = rng.integers(0, num_seeds, size=(num_samples, num_seeds))
    weights = np.zeros((num_samples, num_seeds))
    np.add.at(weights, (np.arange(num_samples)[:, None], draws), 1.0)
    return weights / num_seeds


def _replicate_class_aurocs(y: np.ndarray, s: np.ndarray, sample_w: np.ndarray, seed_w: np.ndarray) -> np.ndarray:
    """(B, C) per-class AUROC of each replicate, averaged over the replicate's drawn seeds."""
    total = np.zeros((sample_w.shape[0], y.shape[1]))
    for k in range(s.shape[0]):
        total += seed_w[:, k : k + 1] * _weighted_aurocs(y, s[k], sample_w)
    return total


def _point_class_aurocs(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(C,) per-class AUROC on the full set, averaged over seeds (NaN where undefined)."""
    return np.mean([_rank_aurocs(y, s[k]) for k in range(s.shape[0])], axis=0)


def _row_means(values: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Mean over the defined classes of each row, ignoring NaN; NaN for a row without any value."""
    sub = values[:, defined]
    count = (~np.isnan(sub)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(sub, axis=1) / np.maximum(count, 1), np.nan)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float, int]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan, 0
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high), int(values.size)


def _class_names(classes: Sequence[str] | None, num_classes: int) -> list[str]:
    names = [f"class_{i}" for i in range(num_classes)] if classes is None else [str(c) for c in classes]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names given for {num_classes} label columns: {names}.")
    return names


def _bootstrap_setup(y_true, groups, num_samples, confidence, seed):
    _check_bootstrap_args(num_samples, confidence)
    y = _binary_labels(y_true)
    group = _group_index(groups, y.shape[0])
    num_groups = int(group.max()) + 1
    rng = np.random.default_rng(seed)
    # patients first, so the patient draws do not depend on the number of seeds
    counts = rng.multinomial(num_groups, np.full(num_groups, 1.0 / num_groups), size=int(num_samples))
    return y, counts[:, group].astype(np.float64), num_groups, rng


def mean_auroc(y_true: np.ndarray | torch.Tensor, scores: np.ndarray | torch.Tensor) -> float:
    """Mean AUROC over the classes with both label values (NaN when none has), averaged over seeds when ``scores``
    is (S, N, C). The statistic the bootstrap functions below resample, and the one used to pick settings on a
    validation set.

    Args:
        y_true: binary labels (N, C) (or (N,) for one class).
        scores: scores (N, C) or (S, N, C) for S seeds; any monotone scale.

    Raises:
        ValueError: on a shape mismatch, non-binary labels or non-finite scores.
    """
    y = _binary_labels(y_true)
    s = _seed_scores(scores, "scores", y.shape)
    per_class = _point_class_aurocs(y, s)
    defined = _defined(y)
    return float(per_class[defined].mean()) if defined.any() else math.nan


def bootstrap_mean_auroc(
    y_true: np.ndarray | torch.Tensor,
    scores: np.ndarray | torch.Tensor,
    groups: np.ndarray | Sequence | torch.Tensor | None = None,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> BootstrapInterval:
    """Mean AUROC over classes with a percentile bootstrap interval over patients and seeds.

    The point is the mean over seeds of the mean AUROC over the defined classes on the full set. Each replicate
    draws as many patients as there are, with replacement (every image of a drawn patient comes along; a patient
    drawn twice counts twice), and, independently, as many seeds as there are, with replacement; its value is the
    mean over the drawn seeds of the mean AUROC over the classes that have both labels in the replicate. Classes
    with one label value on the full set are left out of every mean and listed in ``undefined`` (never scored 0.5).
    The replicates are computed at once as weighted Mann-Whitney statistics (no per-replicate Python loop).

    Args:
        y_true: binary labels (N, C) (or (N,) for one class).
        scores: scores (N, C), or (S, N, C) for S pre-training (or fine-tuning) seeds scored on the same images.
        groups: one id per image (the patient), shape (N,); None resamples images.
        num_samples: number of bootstrap replicates.
        confidence: confidence level in (0, 1).
        seed: seed of the resampling (same seed, same interval).
        classes: class names for ``undefined``; default ``class_0``, ``class_1``, ...

    Returns:
        :class:`BootstrapInterval` ``(point, low, high)`` (NaN bounds, and a NaN point, when no class is defined).

    Raises:
        ValueError: on shape mismatches (naming the argument and the expected shape), non-binary labels,
            non-finite scores, bad ``groups``, ``num_samples`` or ``confidence``.
    """
    y, sample_w, num_groups, rng = _bootstrap_setup(y_true, groups, num_samples, confidence, seed)
    s = _seed_scores(scores, "scores", y.shape)
    names = _class_names(classes, y.shape[1])
    defined = _defined(y)
    point = float(_point_class_aurocs(y, s)[defined].mean()) if defined.any() else math.nan
    reps = _row_means(
        _replicate_class_aurocs(y, s, sample_w, _seed_weights(rng, int(num_samples), s.shape[0])), defined
    )
    low, high, used = _interval(reps, confidence)
    return BootstrapInterval(
        point,
        low,
        high,
        undefined=[n for n, d in zip(names, defined) if not d],
        num_groups=num_groups,
        num_seeds=(s.shape[0],),
        num_replicates=used,
        confidence=confidence,
    )


def bootstrap_auroc_difference(
    y_true: np.ndarray | torch.Tensor,
    scores_a: np.ndarray | torch.Tensor,
    scores_b: np.ndarray | torch.Tensor,
    groups: np.ndarray | Sequence | torch.Tensor | None = None,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> BootstrapInterval:
    """Paired bootstrap of the difference of mean AUROC, arm a minus arm b, scored on the same images.

    Both arms are scored on the same resampled patients in every replicate (paired), which removes the
    between-patient variance the arms share. Seeds are resampled too: with the same number of seeds in both arms
    the same seed draw is used for both (seed k of one arm paired with seed k of the other, e.g. the same
    downstream split seed); with different numbers each arm's seeds are drawn independently. The point is
    ``mean_auroc(y, scores_a) - mean_auroc(y, scores_b)`` on the full set. An interval that excludes 0 says the arms
    differ at this confidence level.

    Args:
        y_true: binary labels (N, C).
        scores_a: scores of arm a, (N, C) or (S_a, N, C).
        scores_b: scores of arm b, (N, C) or (S_b, N, C).
        groups: patient id of each image, shape (N,); None resamples images.
        num_samples: number of bootstrap replicates.
        confidence: confidence level in (0, 1).
        seed: seed of the resampling.
        classes: class names for ``undefined``.

    Returns:
        :class:`BootstrapInterval` ``(difference, low, high)``; ``num_seeds`` is ``(S_a, S_b)``.

    Raises:
        ValueError: as :func:`bootstrap_mean_auroc`.
    """
    y, sample_w, num_groups, rng = _bootstrap_setup(y_true, groups, num_samples, confidence, seed)
    sa = _seed_scores(scores_a, "scores_a", y.shape)
    sb = _seed_scores(scores_b, "scores_b", y.shape)
    names = _class_names(classes, y.shape[1])
    defined = _defined(y)
    if defined.any():
        point = float(_point_class_aurocs(y, sa)[defined].mean() - _point_class_aurocs(y, sb)[defined].mean())
    else:
        point = math.nan
    seed_wa = _seed_weights(rng, int(num_samples), sa.shape[0])
    seed_wb = seed_wa if sb.shape[0] == sa.shape[0] else _seed_weights(rng, int(num_samples), sb.shape[0])
    reps_a = _row_means(_replicate_class_aurocs(y, sa, sample_w, seed_wa), defined)
    reps_b = _row_means(_replicate_class_aurocs(y, sb, sample_w, seed_wb), defined)
    low, high, used = _interval(reps_a - reps_b, confidence)
    return BootstrapInterval(
        point,
        low,
        high,
        undefined=[n for n, d in zip(names, defined) if not d],
        num_groups=num_groups,
        num_seeds=(sa.shape[0], sb.shape[0]),
        num_replicates=used,
        confidence=confidence,
    )


def per_class_bootstrap(
    y_true: np.ndarray | torch.Tensor,
    scores: np.ndarray | torch.Tensor,
    groups: np.ndarray | Sequence | torch.Tensor | None = None,
    num_samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> AUROCResult:
    """Per-class AUROC and mean AUROC with intervals over patients and seeds, as an :class:`AUROCResult` (for
    :func:`auroc_markdown` / :func:`write_auroc_csv` per-finding tables).

    Same resampling and same replicates as :func:`bootstrap_mean_auroc` with the same arguments, so ``mean`` and
    ``mean_ci`` equal its ``(point, low, high)``. A class's interval uses the replicates in which it has both labels.

    Args:
        y_true: binary labels (N, C).
        scores: (N, C) or (S, N, C) for S seeds.
        groups: patient id of each image, shape (N,); None resamples images.
        num_samples: number of bootstrap replicates.
        confidence: confidence level in (0, 1).
        seed: seed of the resampling.
        classes: class names; default ``class_0``, ``class_1``, ...

    Raises:
        ValueError: as :func:`bootstrap_mean_auroc`.
    """
    y, sample_w, _, rng = _bootstrap_setup(y_true, groups, num_samples, confidence, seed)
    s = _seed_scores(scores, "scores", y.shape)
    names = _class_names(classes, y.shape[1])
    defined = _defined(y)
    per_class = _point_class_aurocs(y, s)
    reps = _replicate_class_aurocs(y, s, sample_w, _seed_weights(rng, int(num_samples), s.shape[0]))
    low = np.full(y.shape[1], np.nan)
    high = np.full(y.shape[1], np.nan)
    for c in np.flatnonzero(defined):
        low[c], high[c], _ = _interval(reps[:, c], confidence)
    mean_low, mean_high, _ = _interval(_row_means(reps, defined), confidence)
    return AUROCResult(
        classes=names,
        auroc=[float(v) for v in per_class],
        ci_low=[float(v) for v in low],
        ci_high=[float(v) for v in high],
        mean=float(per_class[defined].mean()) if defined.any() else math.nan,
        mean_ci=(mean_low, mean_high),
        undefined=[n for n, d in zip(names, defined) if not d],
        num_samples=int(y.shape[0]),
        confidence=confidence,
    )


def _fmt(v: float, digits: int) -> str:
    return "undefined (one class)" if math.isnan(v) else f"{v:.{digits}f}"


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
