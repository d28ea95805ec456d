"""Records, splits and transforms of the downstream classification bundles, built from config values.

Protocol: each reader's official test split is the test set (RSNA has none: patients are held out); a validation
set of whole patients is carved from the training pool; then ``label_fraction`` of the remaining training images
(nested 1 % < 10 % < 100 % subsets, by patient) keep their labels for fine-tuning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import Compose, EnsureTyped, RandAffined, SelectItemsd

from monai_afire.data import holdout_split, label_fraction_split, load_dataset, load_image_folder
from monai_afire.transforms import radiograph_transforms

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
]

#: reader name -> (training split kwargs, test split kwargs); None: no official test split (patients held out).
CLASSIFICATION_DATASETS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "simcxr": ({"split": "train_val"}, {"split": "test"}),
    "chestxray14": ({"split": "train_val"}, {"split": "test"}),
    "chexpert": ({"split": "train"}, {"split": "valid"}),
    "vindr": ({"split": "train"}, {"split": "test"}),
    "rsna": ({}, None),
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
) -> dict[str, Any]:
    """Training, validation and test records of a labelled chest radiograph dataset.

    Args:
        dataset: ``simcxr``, ``chestxray14``, ``chexpert``, ``rsna`` or ``vindr``.
        dataset_dir: the dataset folder in its official layout.
        label_fraction: fraction of the training images whose labels are used, in (0, 1] (0.01, 0.1, 1.0 in
            the paper); the subsets are nested and patient-wise (:func:`~monai_afire.data.label_fraction_split`).
        classes: class names to train on (a subset of the reader's classes, any order); see :func:`dataset_classes`.
        val_fraction: fraction of the training patients held out for validation (model selection).
        test_fraction: fraction of the patients held out for testing where the dataset has no official test split.
        seed: seed of the validation/test hold-outs and of the label-fraction subset.
        reader_kwargs: extra arguments of the reader (e.g. ``{"uncertainty": "zeros"}`` for CheXpert).

    Returns:
        dict with ``train``, ``val``, ``test`` (record lists) and ``classes`` (names, label column order).

    Raises:
        ValueError: unknown dataset, label fraction outside (0, 1], classes not in the dataset, or an empty split.
    """
    name = str(dataset).lower()
    if name not in CLASSIFICATION_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(CLASSIFICATION_DATASETS)}, got {dataset!r}.")
    if not 0.0 < float(label_fraction) <= 1.0:
        raise ValueError(f"label_fraction must be in (0, 1] (e.g. 0.01, 0.1, 1.0), got {label_fraction}.")
    train_kwargs, test_kwargs = CLASSIFICATION_DATASETS[name]
    kwargs = dict(reader_kwargs or {})
    wanted = dataset_classes(name, dataset_dir, classes)
    pool, reader_classes = load_dataset(name, dataset_dir, **train_kwargs, **kwargs)
    pool, names = select_classes(pool, reader_classes, wanted)
    if test_kwargs is None:
        pool, test = holdout_split(pool, test_fraction, seed=seed)
    else:
        test, _ = load_dataset(name, dataset_dir, **test_kwargs, **kwargs)
        test, _ = select_classes(test, reader_classes, wanted)
    train_pool, val = holdout_split(pool, val_fraction, seed=seed + 1)
    for split, recs in (("training", train_pool), ("validation", val), ("test", test)):
        if not recs:
            raise ValueError(f"{dataset_dir}: the {split} split of {name!r} is empty ({len(pool)} training images).")
    train = label_fraction_split(train_pool, float(label_fraction), seed=seed)
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


def inference_records(dataset_dir: str | os.PathLike, extensions: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Records ``{"image": path}`` of every radiograph in a folder (see :func:`~monai_afire.data.load_image_folder`).

    Raises:
        ValueError: the folder holds no image.
    """
    kwargs: dict[str, Any] = {} if extensions is None else {"extensions": tuple(extensions)}
    records, _ = load_image_folder(dataset_dir, **kwargs)
    records = [{"image": r["image"]} for r in records]
    if not records:
        raise ValueError(f"inference_records: no image found in {dataset_dir}.")
    return records


def save_class_names(classes: Sequence[str], folder: str | os.PathLike, filename: str = "classes.json") -> Path:
    """Write the class names next to the model weights, so inference knows the output columns."""
    path = Path(folder) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([str(c) for c in classes], indent=1) + "\n")
    return path


def read_class_names(folder: str | os.PathLike, filename: str = "classes.json") -> list[str]:
    """Read the names written by :func:`save_class_names`.

    Raises:
        FileNotFoundError: no class list in ``folder`` (train first, or set the bundle's ``class_names``).
    """
    path = Path(folder) / filename
    if not path.is_file():
        raise FileNotFoundError(f"read_class_names: no {filename} in {folder}; train the model first.")
    return [str(c) for c in json.loads(path.read_text())]
