"""Representation quality of a pre-trained encoder: anatomy cohesion of its patch tokens on normal radiographs
with anatomy maps (the simulated set), written as a markdown table and a t-SNE plot."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import decollate_batch
from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized, SelectItemsd, SpatialPadd
from threadpoolctl import threadpool_limits

from monai_afire.data import load_chestxray14
from monai_afire.metrics import cohesion_metrics, evaluate_cohesion, token_anatomy_labels
from monai_afire.networks import AFiReEncoder, load_pretrained_encoder
from monai_afire.transforms import radiograph_transforms
from monai_afire.visualize import plot_token_embedding

__all__ = [
    "cohesion_records",
    "cohesion_transforms",
    "anatomy_label_names",
    "load_encoder",
    "write_cohesion_report",
    "run_cohesion",
    "CohesionReport",
]

COHESION_KEYS = ("silhouette", "nmi", "ari", "knn_accuracy")


def cohesion_records(dataset_dir: str | os.PathLike, max_images: int | None = None) -> list[dict[str, str]]:
    """Normal images (no finding) of a simulated set with their anatomy maps: ``{"image", "anatomy"}`` records.

    Raises:
        ValueError: the folder has no ``anatomy/`` maps or no normal image.
    """
    root = Path(dataset_dir)
    if not (root / "anatomy").is_dir():
        raise ValueError(f"cohesion_records: {root} has no anatomy/ folder; generate it with monai_afire.data.simcxr.")
    records, _ = load_chestxray14(root)
    out = []
    for rec in records:
        anatomy = root / "anatomy" / Path(rec["image"]).name
        if not np.any(rec["label"]) and anatomy.is_file():
            out.append({"image": rec["image"], "anatomy": str(anatomy)})
    if not out:
        raise ValueError(f"cohesion_records: no normal image with an anatomy map in {root}.")
    return out[:max_images]


def cohesion_transforms(image_size: int = 224) -> Compose:
    """The image prepared as for training; the anatomy label map read with the same geometry (nearest
    neighbour resizing of the longest side, centred padding with background 0)."""
    return Compose(
        [
            radiograph_transforms(image_size, keys=("image",)),
            LoadImaged("anatomy", reader="PILReader", ensure_channel_first=True, image_only=True),
            Resized("anatomy", spatial_size=image_size, size_mode="longest", mode="nearest"),
            SpatialPadd("anatomy", spatial_size=(image_size, image_size)),
            EnsureTyped("anatomy", dtype=np.int64, track_meta=False),
            SelectItemsd(("image", "anatomy")),
        ]
    )


def anatomy_label_names(dataset_dir: str | os.PathLike) -> dict[int, str] | None:
    """Anatomy label names from a simulated set's ``simcxr.json`` (None when absent)."""
    meta = Path(dataset_dir) / "simcxr.json"
    if not meta.is_file():
        return None
    return dict(enumerate(json.loads(meta.read_text()).get("anatomy_labels", [])))


def load_encoder(checkpoint: str | os.PathLike | Mapping[str, Any] | None, **encoder_kwargs: Any) -> AFiReEncoder:
    """An :class:`~monai_afire.networks.AFiReEncoder` with the teacher weights of a pre-training checkpoint (strict:
    every weight must fit), or at random when ``checkpoint`` is None.

    Raises:
        ValueError: the checkpoint is not an encoder of the configured size (names the weights).
    """
    encoder = AFiReEncoder(**encoder_kwargs)
    if checkpoint is not None:
        try:
            load_pretrained_encoder(checkpoint, encoder, strict=True)
        except (RuntimeError, ValueError) as err:
            where = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "the state dict"
            raise ValueError(f"load_encoder: {where} is not an encoder of the configured size: {err}") from err
    return encoder


def run_cohesion(
    encoder: AFiReEncoder,
    loader: Iterable,
    output_dir: str | os.PathLike,
    label_names: Mapping[int, str] | None = None,
    ignore_labels: Sequence[int] = (0,),
    max_samples: int | None = 5000,
    seed: int = 0,
    title: str = "Anatomy cohesion of patch tokens",
    device: Any = "cpu",
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Token embeddings of ``encoder`` over ``loader`` (``image``/``anatomy`` batches), their cohesion by anatomy
    (:func:`~monai_afire.metrics.evaluate_cohesion`: silhouette, k-means NMI/ARI, k-NN accuracy), written to
    ``cohesion.md`` with a t-SNE plot ``cohesion_tsne.png`` in ``output_dir``. ``num_threads`` limits scikit-learn's
    native thread pools while scoring (see :class:`CohesionReport`).

    Returns:
        the metrics (without the embedding arrays).
    """
    with threadpool_limits(limits=num_threads):
        result = evaluate_cohesion(
            encoder.to(device), loader, ignore_labels=ignore_labels, max_samples=max_samples, tsne=True, seed=seed
        )
    return write_cohesion_report(result, output_dir, label_names, title)


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
