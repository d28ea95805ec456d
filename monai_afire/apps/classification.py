"""Records, splits and transforms of the downstream classification bundles, built from config values.

Protocol: each reader's official test split is the test set (RSNA has none: patients are held out); a validation
set of whole patients is carved from the training pool; then ``label_fraction`` of the remaining training images
(nested 1 % < 10 % < 100 % subsets, by patient) keep their labels for fine-tuning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import Compose, EnsureTyped, RandAffined, SelectItemsd

from monai_afire.data import (
    check_records,
    holdout_split,
    label_fraction_split,
    load_dataset,
    load_image_folder,
    reader_kwargs_for_check,
)
from monai_afire.networks.pretrained import ENCODER_CONFIG_KEY, encoder_config
from monai_afire.transforms import radiograph_transforms

logger = logging.getLogger(__name__)

__all__ = [
    "CLASSIFICATION_DATASETS",
    "dataset_classes",
    "select_classes",
    "classification_splits",
    "label_prevalence",
    "classification_transforms",
    "inference_records",
    "save_class_names",
    "read_class_names",
    "save_model_config",
    "read_model_config",
    "check_trained_model",
]

#: reader name -> (training split kwargs, test split kwargs); None: no official test split (patients held out).
#: ``csv``: ``dataset_dir`` is the CSV file, ``reader_kwargs`` name its ``image_column`` and ``label_columns``;
#: ``folder``: one sub-folder of images per class (one-hot labels).
CLASSIFICATION_DATASETS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "simcxr": ({"split": "train_val"}, {"split": "test"}),
    "chestxray14": ({"split": "train_val"}, {"split": "test"}),
    "nih": ({"split": "train_val"}, {"split": "test"}),
    "chexpert": ({"split": "train"}, {"split": "valid"}),
    "mimic": ({"split": "train"}, {"split": "test"}),
    "vindr": ({"split": "train"}, {"split": "test"}),
    "rsna": ({}, None),
    "csv": ({}, None),
    "folder": ({"class_folders": True}, None),
}


def dataset_classes(dataset: str, dataset_dir: str | os.PathLike, classes: Sequence[str] | None) -> list[str] | None:
    """The class list to train on: ``classes`` when given; for ``simcxr`` the findings it simulates (from its
    ``simcxr.json``), since the other ChestX-ray14 columns are always negative there; else None (all)."""
    if classes is not None:
        return [str(c) for c in classes]
    meta = Path(dataset_dir) / "simcxr.json"
    if dataset == "simcxr" and meta.is_file():
        return list(json.loads(meta.read_text())["findings"])
    return None


def select_classes(
    records: Sequence[dict[str, Any]], reader_classes: Sequence[str], classes: Sequence[str] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep the label columns of ``classes`` (in that order); new record dicts, other keys kept.

    Raises:
        ValueError: a requested class is not one of the reader's classes (all unknown names are listed).
    """
    reader_classes = list(reader_classes)
    if classes is None:
        return [dict(r) for r in records], reader_classes
    wanted = [str(c) for c in classes]
    unknown = [c for c in wanted if c not in reader_classes]
    if unknown or not wanted:
        raise ValueError(
            f"classes {unknown or wanted} do not match the dataset: expected a non-empty subset of {reader_classes}."
        )
    index = [reader_classes.index(c) for c in wanted]
    out = []
    for r in records:
        rec = dict(r)
        if "label" in rec:
            rec["label"] = np.asarray(rec["label"], dtype=np.float32)[index]
        out.append(rec)
    return out, wanted


def classification_splits(
    dataset: str,
    dataset_dir: str | os.PathLike,
    label_fraction: float = 1.0,
    classes: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    reader_kwargs: dict[str, Any] | None = None,
    check_images: bool = False,
    skip_unreadable: bool = False,
) -> dict[str, Any]:
    """Training, validation and test records of a labelled chest radiograph dataset.

    Args:
        dataset: a labelled reader of :func:`~monai_afire.data.load_dataset`: ``simcxr``, ``chestxray14`` (``nih``),
            ``chexpert``, ``mimic``, ``rsna``, ``vindr``, ``csv`` or ``folder`` (one sub-folder per class).
        dataset_dir: the dataset folder in its official layout (for ``csv``: the CSV file).
        label_fraction: fraction of the training images whose labels are used, in (0, 1] (0.01, 0.1, 1.0 in
            the paper); the subsets are nested and patient-wise (:func:`~monai_afire.data.label_fraction_split`).
        classes: class names to train on (a subset of the reader's classes, any order); see :func:`dataset_classes`.
        val_fraction: fraction of the training patients held out for validation (model selection).
        test_fraction: fraction of the patients held out for testing where the dataset has no official test split.
        seed: seed of the validation/test hold-outs and of the label-fraction subset.
        reader_kwargs: extra arguments of the reader (e.g. ``{"uncertainty": "zeros"}`` for CheXpert;
            ``{"image_column": ..., "label_columns": [...]}`` for ``csv``).
        check_images: check every image file up front (it exists and its header reads, see
            :func:`~monai_afire.data.check_records`) and name all the bad ones before anything trains.
        skip_unreadable: with ``check_images``, leave unreadable images out (counted in the log) instead of stopping.

    Returns:
        dict with ``train``, ``val``, ``test`` (record lists) and ``classes`` (names, label column order).

    Raises:
        ValueError: unknown dataset, label fraction outside (0, 1], classes not in the dataset, an empty split, or
            (with ``check_images``) unreadable image files, each named.
    """
    name = str(dataset).lower()
    if name not in CLASSIFICATION_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(CLASSIFICATION_DATASETS)}, got {dataset!r}.")
    if not 0.0 < float(label_fraction) <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1] (e.g. 0.01, 0.1, 1.0), got {label_fraction}.")
    train_kwargs, test_kwargs = CLASSIFICATION_DATASETS[name]
    kwargs = reader_kwargs_for_check(name, reader_kwargs, check_images)
    wanted = dataset_classes(name, dataset_dir, classes)
    pool, reader_classes = load_dataset(name, dataset_dir, **train_kwargs, **kwargs)
    pool, names = select_classes(pool, reader_classes, wanted)
    if test_kwargs is None:
        pool, test = holdout_split(pool, test_fraction, seed=seed)
    else:
        test, _ = load_dataset(name, dataset_dir, **test_kwargs, **kwargs)
        test, _ = select_classes(test, reader_classes, wanted)
    for record in (*pool, *test):  # readers without patients (class folders): each image is its own patient
        record.setdefault("patient_id", record["image"])
    if check_images:
        kept = {id(r) for r in check_records([*pool, *test], skip_unreadable, what=f"{name} data set at {dataset_dir}")}
        pool, test = [r for r in pool if id(r) in kept], [r for r in test if id(r) in kept]
    train_pool, val = holdout_split(pool, val_fraction, seed=seed + 1)
    for split, recs in (("training", train_pool), ("validation", val), ("test", test)):
        if not recs:
            raise ValueError(f"{dataset_dir}: the {split} split of {name!r} is empty ({len(pool)} training images).")
    train = label_fraction_split(train_pool, float(label_fraction), seed=seed)
    logger.info(
        f"{name} at {dataset_dir}: training {len(train)} images (label fraction {float(label_fraction):g} of "
        f"{len(train_pool)}), validation {len(val)}, test {len(test)}; classes {names}"
    )
    return {"train": train, "val": val, "test": test, "classes": names}


def label_prevalence(records: Sequence[dict[str, Any]], smoothing: float = 0.5) -> list[float]:
    """Per-class fraction of positive labels, ``(positives + smoothing) / (labelled + 2 * smoothing)``.

    The bundles start the classifier's head bias at its log-odds (``class_prior`` of
    :func:`~monai_afire.networks.build_classifier`). The smoothing keeps classes without positives (small label
    fractions) strictly between 0 and 1. NaN labels, and labels whose ``label_mask`` is 0, are not counted.

    Raises:
        ValueError: no record has a ``label``, the labels differ in length, or ``smoothing`` is not positive.
    """
    if not smoothing > 0:
        raise ValueError(f"label_prevalence: smoothing must be > 0, got {smoothing}.")
    labels = [np.asarray(r["label"], dtype=np.float64).reshape(-1) for r in records if r.get("label") is not None]
    if not labels:
        raise ValueError("label_prevalence: no record has a 'label'.")
    if len({len(v) for v in labels}) != 1:
        raise ValueError(f"label_prevalence: the labels differ in length: {sorted({len(v) for v in labels})}.")
    y = np.stack(labels)
    known = np.isfinite(y)
    masks = [r.get("label_mask") for r in records if r.get("label") is not None]
    if any(m is not None for m in masks):
        known &= np.stack([np.ones(y.shape[1]) if m is None else np.asarray(m, dtype=np.float64) for m in masks]) > 0
    positives = np.where(known, y, 0.0).sum(axis=0)
    return ((positives + smoothing) / (known.sum(axis=0) + 2.0 * smoothing)).tolist()


def classification_transforms(image_size: int = 224, train: bool = False, keys: Sequence[str] = ("image",)) -> Compose:
    """:func:`~monai_afire.transforms.radiograph_transforms`, light random affine augmentation when ``train``
    (rotation up to 10 degrees, 10 % scaling and translation, half the time), and only ``image``/``label`` kept
    (box lists of varying length would not collate)."""
    steps = [radiograph_transforms(image_size, keys=tuple(keys))]
    if train:
        steps.append(
            RandAffined(
                keys=tuple(keys),
                prob=0.5,
                rotate_range=(0.17,),
                scale_range=(0.1, 0.1),
                translate_range=(0.1 * image_size, 0.1 * image_size),
                padding_mode="zeros",
            )
        )
    steps += [
        EnsureTyped(keys="label", dtype=np.float32, allow_missing_keys=True, track_meta=False),
        SelectItemsd(keys=(*keys, "label"), allow_missing_keys=True),
    ]
    return Compose(steps)


def inference_records(
    dataset_dir: str | os.PathLike,
    extensions: Sequence[str] | None = None,
    check_images: bool = False,
    skip_unreadable: bool = False,
) -> list[dict[str, Any]]:
    """Records ``{"image": path}`` of every radiograph in a folder (see :func:`~monai_afire.data.load_image_folder`).

    Args:
        dataset_dir: the folder (searched recursively).
        extensions: file endings to include (default: PNG, JPEG, DICOM, NIfTI).
        check_images: check every file up front (it exists and its header reads) and name all the bad ones.
        skip_unreadable: with ``check_images``, leave unreadable files out (counted in the log) instead of stopping.

    Raises:
        ValueError: the folder holds no image, or (with ``check_images``) some are unreadable (each named).
    """
    kwargs: dict[str, Any] = {} if extensions is None else {"extensions": tuple(extensions)}
    records, _ = load_image_folder(dataset_dir, **kwargs)
    records = [{"image": r["image"]} for r in records]
    if not records:
        raise ValueError(f"inference_records: no image found in {dataset_dir}.")
    if check_images:
        records = check_records(records, skip_unreadable, what=f"folder {dataset_dir}")
    return records


def save_class_names(classes: Sequence[str], folder: str | os.PathLike, filename: str = "classes.json") -> Path:
    """Write the class names next to the model weights, so inference knows the output columns."""
    path = Path(folder) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([str(c) for c in classes], indent=1) + "\n")
    return path


def read_class_names(
    folder: str | os.PathLike, filename: str = "classes.json", default: Sequence[str] | None = None
) -> list[str]:
    """Read the names written by :func:`save_class_names`; ``default`` when there are none and it is given.

    Raises:
        FileNotFoundError: no class list in ``folder`` and no ``default`` (train first, or set ``class_names``).
    """
    path = Path(folder) / filename
    if not path.is_file():
        if default is not None:
            return [str(c) for c in default]
        raise FileNotFoundError(f"read_class_names: no {filename} in {folder}; train the model first.")
    return [str(c) for c in json.loads(path.read_text())]


#: the file next to a trained classifier that describes it (classes, pooling, encoder settings).
MODEL_CONFIG = "model_config.json"


def save_model_config(
    folder: str | os.PathLike, classes: Sequence[str], pooling: str, encoder: Any, filename: str = MODEL_CONFIG
) -> Path:
    """Write what inference needs to rebuild the trained classifier, next to its weights (``models/model.pt`` stays a
    plain state dict, as MONAI's ``CheckpointSaver`` and the model zoo's ``ckpt_export`` expect it):
    ``{"classes": [...], "pooling": ..., "encoder_config": {...}}``.

    Args:
        folder: the checkpoint folder (created).
        classes: class names, in output order.
        pooling: the classifier's pooling.
        encoder: the classifier's :class:`~monai_afire.networks.AFiReEncoder` (or the whole classifier).
    """
    encoder = getattr(encoder, "encoder", encoder)
    path = Path(folder) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"classes": [str(c) for c in classes], "pooling": str(pooling)}
    content[ENCODER_CONFIG_KEY] = encoder_config(encoder)
    path.write_text(json.dumps(content, indent=1) + "\n")
    return path


def read_model_config(folder: str | os.PathLike, filename: str = MODEL_CONFIG) -> dict[str, Any]:
    """The content written by :func:`save_model_config`, or ``{}`` when the model has not been trained yet (so the
    bundle's configs still parse, e.g. for MONAI's ``verify_net_in_out``)."""
    path = Path(folder) / filename
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def check_trained_model(model_path: str | os.PathLike) -> None:
    """Raise FileNotFoundError, saying what to do, when there is no trained model at ``model_path``."""
    if not Path(model_path).is_file():
        raise FileNotFoundError(
            f"no trained model at {model_path}: train the model first (train.json), with the same --bundle_root "
            "(or --ckpt_dir)."
        )
