"""Readers for public chest radiograph datasets in their official layouts.

Every reader returns ``(records, classes)``: ``records`` is a list of MONAI-style dicts ready for
:class:`monai.data.Dataset` with at least ``"image"`` (path string) and, for labelled sets,
``"label"`` (float32 multi-hot numpy vector in ``classes`` order) and ``"patient_id"``. Readers that
have localisation labels add ``"boxes"`` (list of ``[x0, y0, x1, y1]`` in pixels of the original
image) and ``"box_labels"`` (list of class names). Readers only parse tables and check that files
exist: no image is opened until the transforms run.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHESTXRAY14_CLASSES",
    "CHEXPERT_CLASSES",
    "CHEXPERT_ALL_CLASSES",
    "RSNA_CLASSES",
    "VINDR_CLASSES",
    "IMAGE_EXTENSIONS",
    "load_chestxray14",
    "load_chexpert",
    "load_rsna_pneumonia",
    "load_vindr_cxr",
    "load_mimic_cxr",
    "load_csv_dataset",
    "load_image_folder",
    "load_dataset",
    "dataset_reader",
]

CHESTXRAY14_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
"""The 14 ChestX-ray14 findings in the order of the original paper (Wang et al. 2017)."""

# BBox_List_2017.csv spells one finding differently from Data_Entry_2017.csv.
_NIH_BOX_ALIASES = {"Infiltrate": "Infiltration"}

CHEXPERT_CLASSES: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
"""The 5 CheXpert competition findings."""

CHEXPERT_ALL_CLASSES: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
"""All 14 CheXpert label columns, in the order of ``train.csv``."""

RSNA_CLASSES: tuple[str, ...] = ("Pneumonia",)
"""RSNA Pneumonia Detection: one class (lung opacity suspicious for pneumonia)."""

VINDR_CLASSES: tuple[str, ...] = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Lung cavity",
    "Lung cyst",
    "Mediastinal shift",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
)
"""The 22 VinDr-CXR local (boxed) findings; "No finding" rows give an all-zero label."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz")
"""File endings recognised by :func:`load_image_folder` by default."""


def _read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV file into rows keyed by header, checking that ``required`` columns are present."""
    if not path.is_file():
        raise FileNotFoundError(f"Expected the table file {path} but it does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path} is empty; expected a header with columns {list(required)}.") from None
        rows = [dict(zip(header, (v.strip() for v in row))) for row in reader if any(v.strip() for v in row)]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; expected at least {list(required)}, found {header}.")
    return header, rows


def _check_exists(path: str, table: Path, row: int) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{table}, row {row}: the image {path} does not exist.")


def _class_index(classes: Sequence[str]) -> dict[str, int]:
    return {c: i for i, c in enumerate(classes)}


def _float(value: str, table: Path, row: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{table}, row {row}, column {column!r}: expected a number, got {value!r}.") from None


# --------------------------------------------------------------------------------------------- ChestX-ray14


def _nih_data_entry(root: Path) -> Path:
    for name in ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"):
        if (root / name).is_file():
            return root / name
    found = sorted(root.glob("Data_Entry_2017*.csv"))
    if found:
        return found[0]
    raise FileNotFoundError(f"Expected Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv) in {root}; none found.")


def _nih_image_index(root: Path) -> dict[str, str]:
    """Map image file names to paths under ``images*/`` folders (flat or the Kaggle ``images_00N/images``)."""
    index: dict[str, str] = {}
    for folder in sorted(root.glob("images*")):
        if not folder.is_dir():
            continue
        for dirpath, _, files in os.walk(folder):
            for name in files:
                if name.lower().endswith(".png"):
                    index.setdefault(name, os.path.join(dirpath, name))
    return index


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"Expected the split list {path} but it does not exist.")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_chestxray14(
    root: str | os.PathLike, split: str | None = None, check_files: bool = True
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read NIH ChestX-ray14 (and the simulated set of :mod:`monai_afire.data.simcxr`, same layout).

    Expects ``Data_Entry_2017.csv`` (header quirks ``OriginalImage[Width,Height]`` split over two columns
    and a trailing comma are handled), optionally ``BBox_List_2017.csv`` (boxes as ``x, y, w, h``; its
    ``Infiltrate`` is mapped to ``Infiltration``), ``train_val_list.txt`` / ``test_list.txt`` for the
    official split, and PNG images in ``images*/`` folders at any depth.

    Args:
        root: dataset folder.
        split: None for all images, ``"train_val"`` or ``"test"`` for the official patient-wise split.
        check_files: raise if a listed image is missing on disk.

    Returns:
        records with ``image``, ``label`` (14 classes, :data:`CHESTXRAY14_CLASSES`), ``patient_id``,
        ``follow_up``, ``boxes``, ``box_labels``; and the class list.
    """
    root = Path(root)
    classes = list(CHESTXRAY14_CLASSES)
    index = _class_index(classes)
    table = _nih_data_entry(root)
    _, rows = _read_csv(table, ("Image Index", "Finding Labels", "Patient ID"))
    if split not in (None, "train_val", "test"):
        raise ValueError(f"split must be None, 'train_val' or 'test', got {split!r}.")
    keep = None if split is None else set(_read_list(root / f"{split}_list.txt"))

    boxes: dict[str, list[tuple[list[float], str]]] = {}
    box_table = root / "BBox_List_2017.csv"
    if box_table.is_file():
        header, box_rows = _read_csv(box_table, ("Image Index", "Finding Label"))
        # Official header "Bbox [x,y,w,h],,," splits into "Bbox [x", "y", "w", "h]".
        coord_cols = [c for c in header if c.startswith("Bbox")]
        if not coord_cols:
            raise ValueError(f"{box_table} lacks the 'Bbox [x,y,w,h]' columns; found {header}.")
        start = header.index(coord_cols[0])
        xywh_cols = header[start : start + 4]
        for r, row in enumerate(box_rows, start=2):
            name = _NIH_BOX_ALIASES.get(row["Finding Label"], row["Finding Label"])
            if name not in index:
                raise ValueError(
                    f"{box_table}, row {r}: unknown finding {row['Finding Label']!r}; expected one of {classes}."
                )
            x, y, w, h = (_float(row.get(c, ""), box_table, r, c) for c in xywh_cols)
            boxes.setdefault(row["Image Index"], []).append(([x, y, x + w, y + h], name))

    images = _nih_image_index(root)
    records = []
    for r, row in enumerate(rows, start=2):
        name = row["Image Index"]
        if keep is not None and name not in keep:
            continue
        label = np.zeros(len(classes), dtype=np.float32)
        for finding in row["Finding Labels"].split("|"):
            finding = finding.strip()
            if finding in ("No Finding", ""):
                continue
            if finding not in index:
                raise ValueError(f"{table}, row {r}: unknown finding {finding!r}; expected 'No Finding' or {classes}.")
            label[index[finding]] = 1.0
        path = images.get(name, str(root / "images" / name))
        if check_files:
            _check_exists(path, table, r)
        follow = row.get("Follow-up #", "0") or "0"
        record = {
            "image": path,
            "label": label,
            "patient_id": row["Patient ID"],
            "follow_up": int(float(follow)),
            "boxes": [b for b, _ in boxes.get(name, [])],
            "box_labels": [n for _, n in boxes.get(name, [])],
        }
        records.append(record)
    return records, classes


# --------------------------------------------------------------------------------------------- CheXpert

_CHEXPERT_POLICIES = ("ones", "zeros", "ignore")


def _chexpert_label_settings(dataset: str, uncertainty: str, classes: Sequence[str] | None, default) -> list[str]:
    """Check the uncertainty policy and class names of a CheXpert-labelled data set; returns the class list."""
    if uncertainty not in _CHEXPERT_POLICIES:
        raise ValueError(f"uncertainty must be one of {_CHEXPERT_POLICIES}, got {uncertainty!r}.")
    classes = list(default if classes is None else classes)
    unknown = [c for c in classes if c not in CHEXPERT_ALL_CLASSES]
    if unknown:
        raise ValueError(f"Unknown {dataset} class(es) {unknown}; expected names from {list(CHEXPERT_ALL_CLASSES)}.")
    return classes


def _resolve_chexpert_path(root: Path, rel: str) -> str:
    """CheXpert paths start with the dataset folder name (``CheXpert-v1.0-small/train/...``)."""
    candidates = [root / rel, root.parent / rel]
    parts = Path(rel).parts
    if len(parts) > 1:
        candidates.append(root.joinpath(*parts[1:]))
    for c in candidates:
        if c.exists():
            return str(c)
    return str(candidates[-1])


def load_chexpert(
    root: str | os.PathLike,
    split: str = "train",
    uncertainty: str = "ones",
    classes: Sequence[str] | None = None,
    frontal_only: bool = False,
    check_files: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read CheXpert (``train.csv`` / ``valid.csv``).

    Blank labels are negative. Uncertain labels (-1) follow ``uncertainty``: ``"ones"`` (U-Ones),
    ``"zeros"`` (U-Zeros) or ``"ignore"`` (NaN in ``label`` and 0 in the extra ``label_mask`` vector, so a
    masked loss can skip them).

    Args:
        root: folder holding ``train.csv``/``valid.csv`` (paths in the CSV may start with that folder's name).
        split: ``"train"`` or ``"valid"``.
        uncertainty: policy for -1 labels.
        classes: label columns to use; default the 5 competition classes :data:`CHEXPERT_CLASSES`.
        frontal_only: keep only rows whose ``Frontal/Lateral`` is ``Frontal``.
        check_files: raise if a listed image is missing on disk.
    """
    root = Path(root)
    if split not in ("train", "valid"):
        raise ValueError(f"split must be 'train' or 'valid', got {split!r}.")
    classes = _chexpert_label_settings("CheXpert", uncertainty, classes, CHEXPERT_CLASSES)
    table = root / f"{split}.csv"
    required = ["Path", *classes] + (["Frontal/Lateral"] if frontal_only else [])
    _, rows = _read_csv(table, required)
    records = []
    for r, row in enumerate(rows, start=2):
        if frontal_only and row["Frontal/Lateral"] != "Frontal":
            continue
        label = np.zeros(len(classes), dtype=np.float32)
        mask = np.ones(len(classes), dtype=np.float32)
        for i, c in enumerate(classes):
            v = row[c]
            value = 0.0 if v == "" else _float(v, table, r, c)
            if value not in (-1.0, 0.0, 1.0):
                raise ValueError(f"{table}, row {r}, column {c!r}: expected 1, 0, -1 or blank, got {v!r}.")
            if value == -1.0:
                if uncertainty == "ones":
                    value = 1.0
                elif uncertainty == "zeros":
                    value = 0.0
                else:
                    value, mask[i] = float("nan"), 0.0
            label[i] = value
        match = re.search(r"(patient\d+)", row["Path"])
        path = _resolve_chexpert_path(root, row["Path"])
        if check_files:
            _check_exists(path, table, r)
        record = {"image": path, "label": label, "patient_id": match.group(1) if match else row["Path"]}
        if uncertainty == "ignore":
            record["label_mask"] = mask
        records.append(record)
    return records, classes


# --------------------------------------------------------------------------------------------- RSNA


def load_rsna_pneumonia(
    root: str | os.PathLike, image_folder: str = "stage_2_train_images", check_files: bool = True
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read the RSNA Pneumonia Detection Challenge (``stage_2_train_labels.csv`` and DICOM images).

    Several rows of one ``patientId`` (one per box) become one record with all its boxes.
    """
    root = Path(root)
    table = root / "stage_2_train_labels.csv"
    if not table.is_file() and (root / "stage_1_train_labels.csv").is_file():
        table = root / "stage_1_train_labels.csv"
    _, rows = _read_csv(table, ("patientId", "x", "y", "width", "height", "Target"))
    by_id: dict[str, dict[str, Any]] = {}
    for r, row in enumerate(rows, start=2):
        pid = row["patientId"]
        target = row["Target"]
        if target not in ("0", "1"):
            raise ValueError(f"{table}, row {r}, column 'Target': expected 0 or 1, got {target!r}.")
        if pid not in by_id:
            path = str(root / image_folder / f"{pid}.dcm")
            if check_files:
                _check_exists(path, table, r)
            by_id[pid] = {
                "image": path,
                "label": np.zeros(1, dtype=np.float32),
                "patient_id": pid,
                "boxes": [],
                "box_labels": [],
            }
        if target == "1":
            rec = by_id[pid]
            rec["label"][0] = 1.0
            x, y, w, h = (_float(row[c], table, r, c) for c in ("x", "y", "width", "height"))
            rec["boxes"].append([x, y, x + w, y + h])
            rec["box_labels"].append("Pneumonia")
    return list(by_id.values()), list(RSNA_CLASSES)


# --------------------------------------------------------------------------------------------- VinDr-CXR


def load_vindr_cxr(
    root: str | os.PathLike, split: str = "train", classes: Sequence[str] | None = None, check_files: bool = True
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read VinDr-CXR (``annotations_{split}.csv``, DICOM images in ``{split}/{image_id}.dicom``).

    The training set has several radiologists per image: a finding is positive if any of them marked it,
    and every radiologist's box is kept (``box_raters`` says whose). "No finding" rows add nothing.
    VinDr has no patient identifiers; ``patient_id`` is the image id.
    """
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    classes = list(VINDR_CLASSES if classes is None else classes)
    index = _class_index(classes)
    table = root / f"annotations_{split}.csv"
    _, rows = _read_csv(table, ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max"))
    by_id: dict[str, dict[str, Any]] = {}
    for r, row in enumerate(rows, start=2):
        iid = row["image_id"]
        if iid not in by_id:
            path = str(root / split / f"{iid}.dicom")
            if not os.path.exists(path) and os.path.exists(str(root / split / f"{iid}.dcm")):
                path = str(root / split / f"{iid}.dcm")
            if check_files:
                _check_exists(path, table, r)
            by_id[iid] = {
                "image": path,
                "label": np.zeros(len(classes), dtype=np.float32),
                "patient_id": iid,
                "boxes": [],
                "box_labels": [],
                "box_raters": [],
            }
        name = row["class_name"]
        if name.lower() == "no finding":
            continue
        if name not in index:
            raise ValueError(f"{table}, row {r}: unknown finding {name!r}; expected 'No finding' or {classes}.")
        rec = by_id[iid]
        rec["label"][index[name]] = 1.0
        if row["x_min"] != "":
            rec["boxes"].append([_float(row[c], table, r, c) for c in ("x_min", "y_min", "x_max", "y_max")])
            rec["box_labels"].append(name)
            rec["box_raters"].append(row.get("rad_id", ""))
    return list(by_id.values()), classes


# --------------------------------------------------------------------------------------------- MIMIC-CXR


def _mimic_table(root: Path, stem: str) -> Path:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"Expected {stem}.csv or {stem}.csv.gz in {root}; neither exists.")


def load_mimic_cxr(
    root: str | os.PathLike,
    split: str | None = None,
    uncertainty: str = "ones",
    classes: Sequence[str] | None = None,
    views: Sequence[str] | None = ("PA", "AP"),
    normal_only: bool = False,
    extension: str = ".jpg",
    check_files: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read MIMIC-CXR(-JPG) with its CheXpert-labeller labels (the AFiRe paper pre-trains on its normal films).

    Expects ``mimic-cxr-2.0.0-chexpert.csv``, ``-metadata.csv`` and ``-split.csv`` (plain or ``.gz``) and
    images at ``files/p{first two digits}/p{subject_id}/s{study_id}/{dicom_id}{extension}``. Labels belong
    to studies and are given to each of their images; studies without labels are left out.

    Args:
        root: dataset folder.
        split: None for all, or ``"train"``, ``"validate"``, ``"test"`` (official split file).
        uncertainty: ``"ones"``, ``"zeros"`` or ``"ignore"`` for -1 labels, as in :func:`load_chexpert`.
        classes: label columns; default all 14 (:data:`CHEXPERT_ALL_CLASSES`).
        views: keep images whose ``ViewPosition`` is in this list (None: all views).
        normal_only: keep only studies labelled "No Finding" = 1.
        extension: ``".jpg"`` (MIMIC-CXR-JPG) or ``".dcm"`` (MIMIC-CXR).
        check_files: raise if an image is missing.
    """
    root = Path(root)
    if split not in (None, "train", "validate", "test"):
        raise ValueError(f"split must be None, 'train', 'validate' or 'test', got {split!r}.")
    classes = _chexpert_label_settings("MIMIC-CXR", uncertainty, classes, CHEXPERT_ALL_CLASSES)
    label_table = _mimic_table(root, "mimic-cxr-2.0.0-chexpert")
    _, label_rows = _read_csv(label_table, ["subject_id", "study_id", "No Finding", *classes])
    studies: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
    for r, row in enumerate(label_rows, start=2):
        label = np.zeros(len(classes), dtype=np.float32)
        mask = np.ones(len(classes), dtype=np.float32)
        for i, c in enumerate(classes):
            value = 0.0 if row[c] == "" else _float(row[c], label_table, r, c)
            if value not in (-1.0, 0.0, 1.0):
                raise ValueError(f"{label_table}, row {r}, column {c!r}: expected 1, 0, -1 or blank, got {row[c]!r}.")
            if value == -1.0:
                value, mask[i] = {"ones": (1.0, 1.0), "zeros": (0.0, 1.0), "ignore": (float("nan"), 0.0)}[uncertainty]
            label[i] = value
        studies[row["study_id"]] = (label, mask, row["No Finding"] in ("1", "1.0"))
    meta_table = _mimic_table(root, "mimic-cxr-2.0.0-metadata")
    _, meta_rows = _read_csv(meta_table, ["dicom_id", "subject_id", "study_id", "ViewPosition"])
    keep = None
    if split is not None:
        split_table = _mimic_table(root, "mimic-cxr-2.0.0-split")
        _, split_rows = _read_csv(split_table, ["dicom_id", "split"])
        keep = {row["dicom_id"] for row in split_rows if row["split"] == split}
    records = []
    for r, row in enumerate(meta_rows, start=2):
        if keep is not None and row["dicom_id"] not in keep:
            continue
        if views is not None and row["ViewPosition"] not in views:
            continue
        study = studies.get(row["study_id"])
        if study is None or (normal_only and not study[2]):
            continue
        sid = row["subject_id"]
        path = str(root / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{row['study_id']}" / f"{row['dicom_id']}{extension}")
        if check_files:
            _check_exists(path, meta_table, r)
        record = {"image": path, "label": study[0].copy(), "patient_id": sid, "study_id": row["study_id"]}
        if uncertainty == "ignore":
            record["label_mask"] = study[1].copy()
        records.append(record)
    return records, classes


# --------------------------------------------------------------------------------------------- generic


def load_csv_dataset(
    csv_path: str | os.PathLike,
    image_column: str,
    label_columns: Sequence[str] = (),
    root: str | os.PathLike | None = None,
    patient_column: str | None = None,
    check_files: bool = True,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Read a generic table: one image path column and numeric 0/1 label columns.

    Args:
        csv_path: the CSV file.
        image_column: column with image paths, relative to ``root`` (default: the CSV's folder) or absolute.
        label_columns: columns holding the labels (numbers; blank is 0); they become ``classes``. Empty (the default)
            for unlabelled images (pre-training).
        root: base folder for relative paths.
        patient_column: optional column for ``patient_id``; default the image path.
        check_files: raise if an image is missing.
    """
    table = Path(csv_path)
    base = Path(root) if root is not None else table.parent
    label_columns = list(label_columns)
    required = [image_column, *label_columns] + ([patient_column] if patient_column else [])
    _, rows = _read_csv(table, required)
    records = []
    for r, row in enumerate(rows, start=2):
        rel = row[image_column]
        if not rel:
            raise ValueError(f"{table}, row {r}, column {image_column!r}: expected an image path, got an empty cell.")
        path = rel if os.path.isabs(rel) else str(base / rel)
        if check_files:
            _check_exists(path, table, r)
        label = np.array(
            [0.0 if row[c] == "" else _float(row[c], table, r, c) for c in label_columns], dtype=np.float32
        )
        records.append({"image": path, "label": label, "patient_id": row[patient_column] if patient_column else rel})
    return records, label_columns


def _has_extension(name: str, extensions: Sequence[str]) -> bool:
    lower = name.lower()
    return any(lower.endswith(e.lower()) for e in extensions)


def load_image_folder(
    root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS, class_folders: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """List the images under a folder, sorted by path.

    Args:
        root: the folder (searched recursively).
        extensions: file endings to include (case-insensitive; ``.nii.gz`` works).
        class_folders: if True, every direct sub-folder of ``root`` is a class (sorted names) and its
            images get a one-hot ``label``; if False, records hold only ``"image"`` (unlabelled
            pre-training) and ``classes`` is empty.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no image with the given endings was found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Expected an image folder at {root} but it is not a directory.")
    if class_folders:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise ValueError(f"class_folders=True but {root} has no sub-folders (one per class expected).")
        records = []
        for i, c in enumerate(classes):
            for path in _walk(root / c, extensions):
                label = np.zeros(len(classes), dtype=np.float32)
                label[i] = 1.0
                records.append({"image": path, "label": label})
    else:
        classes = []
        records = [{"image": path} for path in _walk(root, extensions)]
    if not records:
        raise ValueError(f"No image with endings {list(extensions)} found under {root}.")
    return records, classes


def _walk(folder: Path, extensions: Sequence[str]) -> list[str]:
    found = []
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(dirpath, f) for f in sorted(files) if _has_extension(f, extensions))
    return sorted(found)


_READERS: dict[str, Callable[..., tuple[list[dict[str, Any]], list[str]]]] = {
    "simcxr": load_chestxray14,
    "chestxray14": load_chestxray14,
    "nih": load_chestxray14,
    "chexpert": load_chexpert,
    "rsna": load_rsna_pneumonia,
    "vindr": load_vindr_cxr,
    "mimic": load_mimic_cxr,
    "folder": load_image_folder,
}


def load_dataset(name: str, root: str | os.PathLike, **kwargs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Dispatch to a reader by name: ``simcxr``, ``chestxray14`` (alias ``nih``), ``chexpert``, ``rsna``,
    ``vindr``, ``mimic``, ``folder`` or ``csv`` (for ``csv``, ``root`` is the CSV file and ``image_column`` /
    ``label_columns`` are required keyword arguments)."""
    return dataset_reader(name)(root, **kwargs)


def dataset_reader(name: str) -> Callable[..., tuple[list[dict[str, Any]], list[str]]]:
    """The reader function that :func:`load_dataset` calls for ``name`` (to see which arguments it takes).

    Raises:
        ValueError: ``name`` is not a known reader.
    """
    key = name.lower()
    if key == "csv":
        return load_csv_dataset
    if key not in _READERS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted([*_READERS, 'csv'])}.")
    return _READERS[key]
