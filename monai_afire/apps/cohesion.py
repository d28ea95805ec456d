"""Anatomy cohesion of a pre-trained encoder's patch tokens on normal radiographs with anatomy maps (the simulated
set): records, transforms, the encoder, and a runner writing a markdown table and a t-SNE plot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized, SelectItemsd, SpatialPadd
from threadpoolctl import threadpool_limits

from monai_afire.data import load_chestxray14
from monai_afire.handlers.cohesion import write_cohesion_report
from monai_afire.metrics import evaluate_cohesion
from monai_afire.networks import AFiReEncoder, load_pretrained_encoder, resolve_encoder_config
from monai_afire.transforms import radiograph_transforms
from monai_afire.utils.quiet import nvimgcodec_notice_silenced

__all__ = [
    "cohesion_records",
    "cohesion_transforms",
    "anatomy_label_names",
    "load_encoder",
    "run_cohesion",
]

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
    with nvimgcodec_notice_silenced():  # LoadImaged builds every MONAI reader, nvImageCodec's too
        load_anatomy = LoadImaged("anatomy", reader="PILReader", ensure_channel_first=True, image_only=True)
    return Compose(
        [
            radiograph_transforms(image_size, keys=("image",)),
            load_anatomy,
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


def load_encoder(
    checkpoint: str | os.PathLike | Mapping[str, Any] | None,
    encoder_defaults: Mapping[str, Any] | None = None,
    **encoder_kwargs: Any,
) -> AFiReEncoder:
    """An :class:`~monai_afire.networks.AFiReEncoder` with the teacher weights of a pre-training checkpoint (strict:
    every weight must fit), or at random when ``checkpoint`` is None.

    The architecture is the one saved in the checkpoint (see :func:`~monai_afire.networks.resolve_encoder_config`);
    ``encoder_kwargs`` that are not None must agree with it; ``encoder_defaults`` apply without saved settings.

    Raises:
        ValueError: the checkpoint is not an encoder of the configured size (names the weights), or a setting
            disagrees with the checkpoint's.
    """
    config = resolve_encoder_config(checkpoint, defaults=encoder_defaults, owner="load_encoder", **encoder_kwargs)
    encoder = AFiReEncoder(**config)
    if checkpoint is not None:
        try:
            load_pretrained_encoder(checkpoint, encoder, strict=True)
        except ValueError as err:
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
