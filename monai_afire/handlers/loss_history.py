"""Epoch means of the loss and its components, logged and appended to a CSV file for the loss-curve figure."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from monai_afire.visualize.curves import read_loss_history

__all__ = ["LossHistory"]


class LossHistory:
    """Accumulate ``engine.state.output`` per epoch; at epoch end log the means and append a row to ``path``.

    Columns: ``epoch, iteration, loss, structure, category, restoration`` (the components found in the output). The
    means are also kept in ``self.history`` and ``engine.state.loss_history``. A resumed run appends to the same file
    (rows of epochs after the resumed one are dropped first, so the file never holds an epoch twice).

    Args:
        path: CSV file (its folder is created); None to only keep and log the means.
        keys: entries of the output to average.
    """

    def __init__(
        self, path: str | Path | None = None, keys: tuple[str, ...] = ("loss", "structure", "category", "restoration")
    ) -> None:
        self.path = None if path is None else Path(path)
        self.keys = tuple(keys)
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, float] = {}
        self._count = 0

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        engine.add_event_handler(Events.STARTED, self._trim)
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _trim(self, engine: Engine) -> None:
        if self.path is None or not self.path.is_file():
            return
        rows = [r for r in read_loss_history(self.path) if r["epoch"] <= engine.state.epoch]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, float]]) -> None:
        if not rows:
            self.path.unlink(missing_ok=True)  # type: ignore[union-attr]
            return
        with open(self.path, "w", newline="") as f:  # type: ignore[arg-type]
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def _reset(self, engine: Engine) -> None:
        self._sums, self._count = {}, 0

    def _accumulate(self, engine: Engine) -> None:
        output = engine.state.output or {}
        for key in self.keys:
            if key in output:
                value = output[key]
                value = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
                self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1

    def _write(self, engine: Engine) -> None:
        row = {"epoch": float(engine.state.epoch), "iteration": float(engine.state.iteration)}
        row.update({k: v / max(self._count, 1) for k, v in self._sums.items()})
        self.history.append(row)
        engine.state.loss_history = self.history
        engine.logger.info(
            f"Epoch {engine.state.epoch}/{engine.state.max_epochs}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "iteration"))
        )
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: int(v) if k in ("epoch", "iteration") else v for k, v in row.items()})
