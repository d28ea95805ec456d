"""Anatomy cohesion of patch tokens as an evaluator handler, and the report it writes (markdown table, t-SNE plot)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import decollate_batch
from threadpoolctl import threadpool_limits

from monai_afire.metrics import cohesion_metrics, token_anatomy_labels
from monai_afire.visualize import plot_token_embedding

__all__ = ["CohesionReport", "write_cohesion_report"]

COHESION_KEYS = ("silhouette", "nmi", "ari", "knn_accuracy")


def write_cohesion_report(
    result: Mapping[str, Any],
    output_dir: str | os.PathLike,
    label_names: Mapping[int, str] | None = None,
    title: str = "Anatomy cohesion of patch tokens",
) -> dict[str, Any]:
    """Write ``cohesion.md`` (one-row table) and, when the result has a t-SNE embedding, ``cohesion_tsne.png``.

    Returns:
        the metrics without the embedding arrays.
    """
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = ["n/a" if math.isnan(result[k]) else f"{result[k]:.3f}" for k in COHESION_KEYS]
    text = (
        f"### {title}\n\n| tokens | anatomy labels | " + " | ".join(COHESION_KEYS) + " |\n"
        "|---:|---:|" + "---:|" * len(COHESION_KEYS) + "\n"
        f"| {result['num_tokens']} | {result['num_labels']} | " + " | ".join(cells) + " |\n"
    )
    (out_dir / "cohesion.md").write_text(text, encoding="utf-8")
    if "embedding_2d" in result:
        plot_token_embedding(
            result["embedding_2d"], result["embedding_labels"], label_names, out_dir / "cohesion_tsne.png", title=title
        )
    return {k: v for k, v in result.items() if k not in ("embedding_2d", "embedding_labels")}


class CohesionReport:
    """Evaluator handler: collect the patch tokens (``pred``, (L, D) per image) and the anatomy label of each patch,
    then at the end of the run score their cohesion and write :func:`write_cohesion_report`'s files.

    Args:
        output_dir: folder of ``cohesion.md`` and ``cohesion_tsne.png``.
        patch_size: the encoder's patch size.
        label_names: anatomy label names for the plot legend.
        ignore_labels: anatomy labels left out (background 0 by default).
        max_samples: tokens scored at most (seeded subset).
        seed: seed of the subset, k-means, folds and t-SNE.
        title: heading of the table and the plot.
        anatomy_key: batch key of the anatomy label maps.
        num_threads: threads of scikit-learn's native thread pools while scoring (None: their default). t-SNE's
            OpenMP threads slow down badly on a busy machine; 1 is a safe choice there.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        patch_size: int | Sequence[int],
        label_names: Mapping[int, str] | None = None,
        ignore_labels: Sequence[int] = (0,),
        max_samples: int | None = 5000,
        seed: int = 0,
        title: str = "Anatomy cohesion of patch tokens",
        anatomy_key: str = "anatomy",
        num_threads: int | None = None,
    ) -> None:
        self.output_dir, self.patch_size, self.label_names = output_dir, patch_size, label_names
        self.num_threads = num_threads
        self.ignore_labels, self.max_samples, self.seed, self.title = ignore_labels, max_samples, seed, title
        self.anatomy_key = anatomy_key
        self.result: dict[str, Any] | None = None
        self.reset()

    def reset(self, engine: Engine | None = None) -> None:
        """Forget collected tokens."""
        self.tokens: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.groups: list[np.ndarray] = []

    def attach(self, engine: Engine) -> None:
        """Reset at start, collect every iteration, score at the end."""
        engine.add_event_handler(Events.STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        """Store the tokens and token anatomy labels of the iteration."""
        outputs, batch = engine.state.output, engine.state.batch
        outputs = outputs if isinstance(outputs, list) else [outputs]
        batch = batch if isinstance(batch, list) else decollate_batch(batch)
        for out, item in zip(outputs, batch):
            pred = out["pred"][0] if isinstance(out["pred"], (tuple, list)) else out["pred"]
            tokens = torch.as_tensor(pred).detach().float().cpu()
            labels = token_anatomy_labels(torch.as_tensor(item[self.anatomy_key])[None].cpu(), self.patch_size)[0]
            if tokens.ndim != 2 or tokens.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"CohesionReport: tokens {tuple(tokens.shape)} do not match {labels.shape[0]} anatomy patches."
                )
            self.groups.append(np.full(labels.shape[0], len(self.groups)))
            self.tokens.append(tokens.numpy())
            self.labels.append(labels.numpy())

    def write(self, engine: Engine | None = None) -> dict[str, Any]:
        """Score the collected tokens and write the table and the plot."""
        if not self.tokens:
            raise RuntimeError("CohesionReport: no token was collected; is the data set empty?")
        with threadpool_limits(limits=self.num_threads):
            result = cohesion_metrics(
                np.concatenate(self.tokens),
                np.concatenate(self.labels),
                groups=np.concatenate(self.groups),
                ignore_labels=self.ignore_labels,
                max_samples=self.max_samples,
                tsne=True,
                seed=self.seed,
            )
        self.result = write_cohesion_report(result, self.output_dir, self.label_names, self.title)
        return self.result
