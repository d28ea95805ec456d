"""Epoch means of the loss and its components, logged and appended to a CSV file for the loss-curve figure."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_afire.visualize.curves import read_loss_history

__all__ = ["LossHistory"]

#: the engine state entry (saved with the engine) holding the current epoch's partial sums
PARTIAL_KEY = "loss_history_partial"


class LossHistory:
    """Accumulate ``engine.state.output`` per epoch; at epoch end log the means and append a row to ``path``.

    Columns: ``epoch, iteration, loss, structure, category, restoration`` (the components found in the output). The
    means are also kept in ``self.history`` and ``engine.state.loss_history``. A resumed run appends to the same file
    (rows of epochs after the resumed one are dropped first, so the file never holds an epoch twice).

    The sums are kept as one float64 tensor on the device of the loss (one stack and one add per iteration), so
    accumulating them never makes the host wait for the device; they are read once per epoch. The partial sums of the
    current epoch live in ``engine.state.loss_history_partial``, which is part of the engine's ``state_dict``
    (Ignite's ``state_dict_user_keys``), so a run resumed from a mid-epoch checkpoint writes the same epoch means as
    an uninterrupted run.

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

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``."""
        if PARTIAL_KEY not in engine.state_dict_user_keys:
            engine.state_dict_user_keys.append(PARTIAL_KEY)
        if getattr(engine.state, PARTIAL_KEY, None) is None:
            setattr(engine.state, PARTIAL_KEY, {})
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

    @staticmethod
    def _partial(engine: Engine) -> dict[str, Any]:
        partial = getattr(engine.state, PARTIAL_KEY, None)
        if partial is None:  # e.g. a checkpoint written before this state existed
            partial = {}
            setattr(engine.state, PARTIAL_KEY, partial)
        return partial

    def _reset(self, engine: Engine) -> None:
        partial = self._partial(engine)
        epoch_length = engine.state.epoch_length
        started_mid_epoch = epoch_length and engine.state.iteration % epoch_length
        if started_mid_epoch and partial.get("epoch") == engine.state.epoch:
            return  # resumed mid-epoch: continue the restored sums
        partial.clear()
        partial.update({"epoch": int(engine.state.epoch), "count": 0, "keys": [], "sums": None})

    def _accumulate(self, engine: Engine) -> None:
        output = engine.state.output or {}
        partial = self._partial(engine)
        keys = [k for k in self.keys if k in output]
        partial["count"] = int(partial.get("count", 0)) + 1
        if not keys:
            return
        values = [output[k] for k in keys]
        with torch.no_grad():
            if all(isinstance(v, torch.Tensor) for v in values):
                step = torch.stack([v if v.ndim == 0 else v.sum() for v in values])
            else:
                step = torch.tensor([float(v) for v in values], dtype=torch.float64)
            sums = partial.get("sums")
            if sums is None or partial.get("keys") != keys:
                partial["keys"], partial["sums"] = keys, step.to(torch.float64)
            else:
                sums.add_(step.to(sums.device))  # float64 sums of the float32 values: Python's float arithmetic

    def _write(self, engine: Engine) -> None:
        partial = self._partial(engine)
        row = {"epoch": float(engine.state.epoch), "iteration": float(engine.state.iteration)}
        sums = partial.get("sums")
        if sums is not None:
            means = (sums / max(int(partial.get("count", 0)), 1)).tolist()  # the one read of the epoch
            row.update(dict(zip(partial["keys"], means)))
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
