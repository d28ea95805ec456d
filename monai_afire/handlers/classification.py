"""Ignite handlers of the classification bundles: mean AUROC over defined classes, AUROC tables, probability CSVs."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import ROCAUC, from_engine
from monai.metrics import ROCAUCMetric

from monai_afire.metrics import AUROCResult, multilabel_auroc, write_auroc_csv, write_auroc_markdown

__all__ = [
    "UNDEFINED",
    "DefinedClassesROCAUCMetric",
    "format_metric",
    "defined_metric_is_better",
    "log_epoch_metrics",
    "MeanROCAUC",
    "AUROCReport",
    "ProbabilityCSVWriter",
    "image_names",
]


#: how an undefined metric (NaN: every class had one label value only) is shown.
UNDEFINED = "undefined (one class)"


def format_metric(value: Any, digits: int = 4) -> str:
    """A metric value for the console: ``digits`` decimals, or ``"undefined (one class)"`` for NaN (an AUROC with
    only positives or only negatives); non-numbers as ``str``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return UNDEFINED if math.isnan(number) else f"{number:.{digits}f}"


def defined_metric_is_better(current: float, best: float) -> bool:
    """``metric_cmp_fn`` of MONAI's evaluators for metrics that may be undefined (NaN): an undefined value never
    counts as an improvement, and any defined value beats an undefined best. MONAI's default (``current > best``)
    would keep a first-epoch NaN as the best forever, since no number is greater than NaN."""
    if math.isnan(float(current)):
        return False
    return math.isnan(float(best)) or float(current) > float(best)


def log_epoch_metrics(engine: Engine) -> None:
    """``StatsHandler(epoch_print_logger=...)`` for evaluators: the epoch's metrics and the key metric's best value so
    far, with undefined values written out as ``"undefined (one class)"`` instead of a number that looks like one."""
    metrics = engine.state.metrics or {}
    if metrics:
        text = "  ".join(f"{name}: {format_metric(metrics[name])}" for name in sorted(metrics))
        engine.logger.info(f"Epoch[{engine.state.epoch}] Metrics -- {text}")
    name = getattr(engine.state, "key_metric_name", None)
    if name is not None and getattr(engine.state, "best_metric_epoch", -1) >= 0:
        engine.logger.info(
            f"Key metric: {name} best value: {format_metric(engine.state.best_metric)} "
            f"at epoch: {engine.state.best_metric_epoch}"
        )


class DefinedClassesROCAUCMetric(ROCAUCMetric):
    """MONAI's ``ROCAUCMetric`` whose mean skips classes without positives or negatives (NaN) instead of
    becoming NaN; NaN only when no class is defined. Small validation sets often miss rare findings."""

    def __init__(self) -> None:
        super().__init__(average="none")

    def aggregate(self, average: Any = None) -> float:  # type: ignore[override]
        """Mean of the per-class AUROCs that are defined."""
        values = np.atleast_1d(np.asarray(super().aggregate(average="none"), dtype=np.float64))
        defined = values[~np.isnan(values)]
        return float(defined.mean()) if defined.size else math.nan


class MeanROCAUC(ROCAUC):
    """MONAI's ``ROCAUC`` handler reporting the mean AUROC over the classes defined in the evaluated data.

    Args:
        output_transform: maps the engine output to ``(y_pred, y)``; by default the ``pred`` and ``label`` items of
            the decollated output, as MONAI's evaluators produce them.
    """

    def __init__(self, output_transform: Callable | None = None) -> None:
        transform = from_engine(["pred", "label"]) if output_transform is None else output_transform
        super().__init__(average="none", output_transform=transform)
        self.metric_fn = DefinedClassesROCAUCMetric()


def image_names(batch: Any, key: str = "image") -> list[str]:
    """File names of a batch (collated dict or decollated list of dicts), from the MetaTensor's
    ``filename_or_obj`` (empty strings where unknown)."""
    if isinstance(batch, (list, tuple)):
        return [name for item in batch for name in image_names(item, key)]
    if key not in batch:
        return []
    image = batch[key]
    names = getattr(image, "meta", {}).get("filename_or_obj", None)
    count = 1 if getattr(image, "ndim", 0) <= 3 else len(image)
    if names is None:
        return [""] * count
    return [str(n) for n in ([names] if isinstance(names, str) else names)]


class _Collector:
    """Collect the sigmoid probabilities, labels and image names of every iteration of an evaluator."""

    def __init__(self, pred_key: str = "pred", label_key: str = "label", image_key: str = "image") -> None:
        self.pred_key, self.label_key, self.image_key = pred_key, label_key, image_key
        self.reset()

    def reset(self, engine: Engine | None = None) -> None:
        self.preds: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.names: list[str] = []

    def collect(self, engine: Engine) -> None:
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            self.preds.append(torch.as_tensor(item[self.pred_key]).detach().float().cpu().reshape(-1).numpy())
            if self.label_key in item and item[self.label_key] is not None:
                self.labels.append(torch.as_tensor(item[self.label_key]).detach().float().cpu().reshape(-1).numpy())
        names = image_names(engine.state.batch, self.image_key)
        self.names += names if len(names) == len(items) else [""] * len(items)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)


class AUROCReport(_Collector):
    """At the end of an evaluator run, write per-class AUROC with bootstrap confidence intervals and the mean.

    Writes ``auroc.csv`` and ``auroc.md`` (see :mod:`monai_afire.metrics.classification`) and ``predictions.csv``
    (image, then label and probability per class) to ``output_dir``; the result is kept in ``self.result``. The
    evaluator's ``pred`` must be probabilities (add ``Activationsd(keys="pred", sigmoid=True)`` post-processing).

    Args:
        classes: class names, in label column order.
        output_dir: folder of the tables (created).
        num_bootstrap: bootstrap resamples of the intervals.
        confidence: confidence level of the intervals.
        seed: seed of the bootstrap.
        title: heading of the markdown table.
    """

    def __init__(
        self,
        classes: Sequence[str],
        output_dir: str | os.PathLike,
        num_bootstrap: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        title: str | None = "Test AUROC",
    ) -> None:
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.output_dir = Path(output_dir)
        self.num_bootstrap, self.confidence, self.seed, self.title = num_bootstrap, confidence, seed, title
        self.result: AUROCResult | None = None

    def attach(self, engine: Engine) -> None:
        """Collect every iteration, write the tables when the run completes."""
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def write(self, engine: Engine | None = None) -> AUROCResult:
        """Score the collected outputs and write the tables."""
        if not self.preds:
            raise RuntimeError("AUROCReport: the evaluator produced no output; is the test set empty?")
        if len(self.labels) != len(self.preds):
            raise RuntimeError("AUROCReport: the evaluated data has no 'label'; use inference for unlabelled images.")
        y_score, y_true = np.stack(self.preds), np.stack(self.labels)
        if y_score.shape[1] != len(self.classes):
            raise ValueError(
                f"AUROCReport: the model has {y_score.shape[1]} outputs for {len(self.classes)} classes {self.classes}."
            )
        self.result = multilabel_auroc(
            y_true, y_score, self.classes, self.num_bootstrap, confidence=self.confidence, seed=self.seed
        )
        write_auroc_csv(self.result, self.output_dir / "auroc.csv")
        write_auroc_markdown(self.result, self.output_dir / "auroc.md", title=self.title)
        _write_rows(
            self.output_dir / "predictions.csv",
            ["image", *(f"label_{c}" for c in self.classes), *(f"prob_{c}" for c in self.classes)],
            self.names,
            np.concatenate([y_true, y_score], axis=1),
        )
        return self.result


class ProbabilityCSVWriter(_Collector):
    """Write one row per image, ``image, <class 1>, <class 2>, ...`` (probabilities), when an evaluator run ends.

    Args:
        classes: class names, in output order.
        path: the CSV file (folder created).
    """

    def __init__(self, classes: Sequence[str], path: str | os.PathLike) -> None:
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.path = Path(path)

    def attach(self, engine: Engine) -> None:
        """Collect every iteration, write the file when the run completes."""
        super().attach(engine)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def write(self, engine: Engine | None = None) -> Path:
        """Write the collected probabilities."""
        probs = np.stack(self.preds) if self.preds else np.zeros((0, len(self.classes)))
        if probs.shape[1] != len(self.classes):
            raise ValueError(
                f"ProbabilityCSVWriter: the model has {probs.shape[1]} outputs for {len(self.classes)} classes."
            )
        _write_rows(self.path, ["image", *self.classes], self.names, probs)
        return self.path


def _write_rows(path: Path, header: list[str], names: Sequence[str], values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for name, row in zip(names, values):
            writer.writerow([name, *(f"{v:.6g}" for v in row)])
