"""Cumulative multi-label AUROC with confidence intervals for MONAI evaluators, writing its tables."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist
from monai.handlers import IgniteMetricHandler
from monai.handlers.utils import from_engine
from monai.metrics import CumulativeIterationMetric

from .classification import AUROCResult, multilabel_auroc, write_auroc_csv, write_auroc_markdown

__all__ = ["MultilabelAUROCTable", "AUROCTable"]


class MultilabelAUROCTable(CumulativeIterationMetric):
    """Buffers predictions and labels over an epoch; :meth:`aggregate` gives the mean AUROC and keeps the table.

    The full :class:`AUROCResult` (per-class AUROC, undefined classes, bootstrap intervals) of the last
    :meth:`aggregate` is in :attr:`result`. With ``output_dir`` set, each :meth:`aggregate` also writes
    ``<prefix>.csv`` and ``<prefix>.md`` there (on rank 0 only under torch.distributed; buffers are gathered from
    every process as in MONAI's cumulative metrics).

    Args:
        classes: class names in label column order.
        num_bootstrap: bootstrap resamples of the intervals (0 for none).
        confidence: confidence level.
        seed: bootstrap seed.
        output_dir: folder of the tables; None writes nothing.
        prefix: file name stem of the tables.
        title: heading of the markdown table.
    """

    def __init__(
        self,
        classes: Sequence[str] | None = None,
        num_bootstrap: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        prefix: str = "auroc",
        title: str | None = None,
    ) -> None:
        super().__init__()
        self.classes = None if classes is None else [str(c) for c in classes]
        self.num_bootstrap = num_bootstrap
        self.confidence = confidence
        self.seed = seed
        self.output_dir = output_dir
        self.prefix = prefix
        self.title = title
        self.result: AUROCResult | None = None

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if y_pred.shape != y.shape:
            raise ValueError(f"MultilabelAUROCTable: y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} must match.")
        return y_pred, y

    def aggregate(self) -> float:  # type: ignore[override]
        """Mean AUROC over the defined classes (NaN when none is defined); the full table goes to :attr:`result`."""
        buffers = self.get_buffer()
        if not buffers or not isinstance(buffers[0], torch.Tensor) or buffers[0].numel() == 0:
            raise ValueError("MultilabelAUROCTable: no predictions were accumulated.")
        y_pred, y = buffers
        y_pred = y_pred.reshape(y_pred.shape[0], -1)
        y = y.reshape(y.shape[0], -1)
        self.result = multilabel_auroc(y, y_pred, self.classes, self.num_bootstrap, self.confidence, self.seed)
        rank0 = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
        if self.output_dir is not None and rank0:
            write_auroc_csv(self.result, os.path.join(self.output_dir, f"{self.prefix}.csv"))
            write_auroc_markdown(self.result, os.path.join(self.output_dir, f"{self.prefix}.md"), title=self.title)
        return self.result.mean


class AUROCTable(IgniteMetricHandler):
    """Ignite/MONAI metric handler of :class:`MultilabelAUROCTable` (use like ``monai.handlers.ROCAUC``).

    Attach it to a ``SupervisedEvaluator`` (``key_val_metric`` or ``additional_metrics``): the engine's metric is
    the mean AUROC, and the per-class table is written to ``output_dir`` at each evaluation.

    Args:
        classes: class names in label column order.
        num_bootstrap: bootstrap resamples of the intervals.
        confidence: confidence level.
        seed: bootstrap seed.
        output_dir: folder of ``<prefix>.csv`` and ``<prefix>.md``; None writes nothing.
        prefix: file name stem.
        title: heading of the markdown table.
        output_transform: maps ``engine.state.output`` to ``(y_pred, y)``; MONAI's ``pred``/``label`` by default.
    """

    def __init__(
        self,
        classes: Sequence[str] | None = None,
        num_bootstrap: int = 1000,
        confidence: float = 0.95,
        seed: int = 0,
        output_dir: str | os.PathLike | None = None,
        prefix: str = "auroc",
        title: str | None = None,
        output_transform: Callable | None = None,
    ) -> None:
        metric = MultilabelAUROCTable(classes, num_bootstrap, confidence, seed, output_dir, prefix, title)
        transform = output_transform if output_transform is not None else from_engine(["pred", "label"])
        super().__init__(metric_fn=metric, output_transform=transform, save_details=False)
