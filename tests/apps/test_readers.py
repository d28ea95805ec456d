"""Every reader of ``load_dataset`` in the bundles where it makes sense (issue 12, finding 5): labelled readers in the
classification bundle's splits (with the up-front file check), any reader for pre-training, a plain folder for
inference. Tiny layouts with real (tiny) image files in each data set's official layout."""

from __future__ import annotations

import shutil
import unittest
from pathlib import Path

import numpy as np
import pydicom
import pytest
from parameterized import parameterized
from PIL import Image

from monai_afire.apps import CLASSIFICATION_DATASETS, classification_splits, inference_records, pretraining_records
from tests.tiny import BUNDLE_OVERRIDES, CLASSIFICATION_CONFIGS, TmpDirTestCase, run_bundle, write_films

TINY_CR = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"
PATIENTS = 8  # 6 in the training pool, 2 in the official test split where there is one
NIH_HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
CHEXPERT_COLUMNS = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
                    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
                    "Pleural Other", "Fracture", "Support Devices"]  # fmt: skip


def _image(path: Path, i: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".dcm", ".dicom"):
        shutil.copy(TINY_CR, path)
        return
    rng = np.random.default_rng(i)
    pixels = (rng.random((24, 20)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def _positive(i: int) -> bool:
    return i % 2 == 1


def chestxray14(root: Path) -> Path:
    rows = []
    for i in range(PATIENTS):
        name = f"{i:08d}_000.png"
        _image(root / "images_001" / "images" / name, i)
        rows.append(f"{name},{'Cardiomegaly' if _positive(i) else 'No Finding'},0,{i},50,F,PA\n")
    (root / "Data_Entry_2017.csv").write_text(NIH_HEADER + "".join(rows))
    names = [r.split(",")[0] for r in rows]
    (root / "train_val_list.txt").write_text("\n".join(names[:6]) + "\n")
    (root / "test_list.txt").write_text("\n".join(names[6:]) + "\n")
    return root


def chexpert(root: Path) -> Path:
    root = root / "CheXpert-v1.0-small"
    for split, ids in (("train", range(6)), ("valid", range(6, PATIENTS))):
        lines = ["Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_COLUMNS)]
        for i in ids:
            rel = f"CheXpert-v1.0-small/{split}/patient{i:05d}/study1/view1_frontal.jpg"
            _image(root.parent / rel, i)
            values = ["1.0" if _positive(i) and c in ("Cardiomegaly", "Edema") else "" for c in CHEXPERT_COLUMNS]
            lines.append(f"{rel},Female,60,Frontal,AP," + ",".join(values))
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def mimic(root: Path) -> Path:
    labels = ["subject_id,study_id," + ",".join(CHEXPERT_COLUMNS)]
    meta = ["dicom_id,subject_id,study_id,ViewPosition"]
    split = ["dicom_id,study_id,subject_id,split"]
    for i in range(PATIENTS):
        sid, study, dicom = f"1{i:07d}", f"5{i:07d}", f"d{i}"
        values = ["1.0" if (c == "Cardiomegaly") == _positive(i) and c in ("Cardiomegaly", "No Finding") else ""
                  for c in CHEXPERT_COLUMNS]  # fmt: skip
        labels.append(f"{sid},{study}," + ",".join(values))
        meta.append(f"{dicom},{sid},{study},PA")
        split.append(f"{dicom},{study},{sid},{'train' if i < 6 else 'test'}")
        _image(root / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{study}" / f"{dicom}.jpg", i)
    for name, lines in (("chexpert", labels), ("metadata", meta), ("split", split)):
        (root / f"mimic-cxr-2.0.0-{name}.csv").write_text("\n".join(lines) + "\n")
    return root


def rsna(root: Path) -> Path:
    lines = ["patientId,x,y,width,height,Target"]
    for i in range(PATIENTS):
        pid = f"p{i}"
        _image(root / "stage_2_train_images" / f"{pid}.dcm")
        lines.append(f"{pid},1,2,5,6,1" if _positive(i) else f"{pid},,,,,0")
    (root / "stage_2_train_labels.csv").write_text("\n".join(lines) + "\n")
    return root


def vindr(root: Path) -> Path:
    for split, ids in (("train", range(6)), ("test", range(6, PATIENTS))):
        lines = ["image_id,rad_id,class_name,x_min,y_min,x_max,y_max"]
        for i in ids:
            _image(root / split / f"img{i}.dicom")
            lines.append(f"img{i},R1,Cardiomegaly,1,2,8,9" if _positive(i) else f"img{i},R1,No finding,,,,")
        (root / f"annotations_{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def csv_table(root: Path) -> Path:
    lines = ["path,patient,Effusion,Nodule"]
    for i in range(PATIENTS):
        _image(root / "films" / f"f{i}.png", i)
        lines.append(f"films/f{i}.png,P{i},{int(_positive(i))},{int(i % 3 == 0)}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def class_folders(root: Path) -> Path:
    for i in range(PATIENTS):
        _image(root / ("pneumonia" if _positive(i) else "normal") / f"f{i}.png", i)
    return root


CSV_KWARGS = {"image_column": "path", "label_columns": ["Effusion", "Nodule"], "patient_column": "patient"}
#: reader, layout builder, reader_kwargs, classes, number of test images
CASES = [
    ("chestxray14", chestxray14, {}, ["Cardiomegaly"], 2),
    ("nih", chestxray14, {}, ["Cardiomegaly"], 2),
    ("chexpert", chexpert, {}, ["Cardiomegaly", "Edema"], 2),
    ("mimic", mimic, {}, ["Cardiomegaly"], 2),
    ("rsna", rsna, {}, None, 2),
    ("vindr", vindr, {}, ["Cardiomegaly"], 2),
    ("csv", csv_table, CSV_KWARGS, None, 2),
    ("folder", class_folders, {}, None, 2),
]


class TestClassificationReaders(TmpDirTestCase):
    def test_every_labelled_reader_is_offered(self):
        self.assertEqual({c[0] for c in CASES} | {"simcxr"}, set(CLASSIFICATION_DATASETS))

    @parameterized.expand(CASES)
    def test_splits(self, name, build, kwargs, classes, num_test):
        root = build(self.tmp)
        data = classification_splits(name, root, 1.0, classes, val_fraction=0.2, test_fraction=0.25, seed=0,
                                     reader_kwargs=kwargs, check_images=True)  # fmt: skip
        self.assertEqual(len(data["test"]), num_test)
        self.assertEqual(len(data["train"]) + len(data["val"]) + len(data["test"]), PATIENTS)
        self.assertGreaterEqual(len(data["val"]), 1)
        for split in ("train", "val", "test"):
            for record in data[split]:
                self.assertEqual(len(record["label"]), len(data["classes"]))
                self.assertTrue(Path(record["image"]).is_file())
        if classes is not None:
            self.assertEqual(data["classes"], classes)
        train_labels = np.stack([r["label"] for r in data["train"]])
        self.assertTrue(np.all(train_labels.max(0) == 1))  # every class has a positive to learn from

    @parameterized.expand(CASES)
    def test_pretraining_records(self, name, build, kwargs, _classes, _num_test):
        root = build(self.tmp)
        reader = "folder" if name == "folder" else name
        kwargs = {**kwargs, "class_folders": True} if name == "folder" else kwargs
        records = pretraining_records(root, reader, check_images=True, **kwargs)
        self.assertGreaterEqual(len(records), 6)
        self.assertEqual(set(records[0]), {"image"})

    def test_inference_reads_a_plain_folder(self):
        write_films(self.tmp / "new" / "deeper", n=2)
        _image(self.tmp / "new" / "scan.dcm")
        records = inference_records(self.tmp / "new", check_images=True)
        self.assertEqual([Path(r["image"]).name for r in records], ["film_0.png", "film_1.png", "scan.dcm"])

    def test_unreadable_images_are_named_or_skipped(self):
        """Issue 12, finding 6, in the classification bundle's data: every bad file named up front, or left out."""
        table = csv_table(self.tmp / "data")
        (self.tmp / "data" / "films" / "f3.png").write_bytes(b"not a PNG")
        (self.tmp / "data" / "films" / "f5.png").unlink()
        kwargs = {"reader_kwargs": CSV_KWARGS, "val_fraction": 0.2, "test_fraction": 0.25, "check_images": True}
        with self.assertRaises(ValueError) as err:
            classification_splits("csv", table, **kwargs)
        message = str(err.exception)
        self.assertIn("2 of the 8 image files", message)
        self.assertIn("f3.png: not a readable PNG/JPEG file", message)
        self.assertIn("f5.png", message)
        self.assertIn("skip_unreadable", message)
        data = classification_splits("csv", table, skip_unreadable=True, **kwargs)
        names = sorted(Path(r["image"]).name for split in ("train", "val", "test") for r in data[split])
        self.assertEqual(names, [f"f{i}.png" for i in (0, 1, 2, 4, 6, 7)])


@pytest.mark.slow
class TestClassificationBundleReaders(TmpDirTestCase):
    @parameterized.expand([("csv", csv_table, CSV_KWARGS), ("mimic", mimic, {"classes": None})])
    def test_train_and_evaluate(self, name, build, kwargs):
        root = build(self.tmp / "data")
        reader_kwargs = {k: v for k, v in kwargs.items() if k != "classes"}
        over = {**BUNDLE_OVERRIDES, "bundle_root": str(self.tmp / "bundle"), "dataset": name,
                "dataset_dir": str(root), "reader_kwargs": reader_kwargs, "val_fraction": 0.2, "max_epochs": 1,
                "warmup_epochs": 0, "num_bootstrap": 20, "image_size": 32, "patch_size": 8}  # fmt: skip
        if name == "mimic":
            over["classes"] = ["Cardiomegaly", "No Finding"]
        run_bundle(CLASSIFICATION_CONFIGS / "train.json", "train", **over)
        self.assertTrue((self.tmp / "bundle" / "models" / "model.pt").is_file())
        run_bundle([CLASSIFICATION_CONFIGS / "train.json", CLASSIFICATION_CONFIGS / "evaluate.json"], "train", **over)
        self.assertTrue((self.tmp / "bundle" / "eval" / "auroc.md").is_file())


if __name__ == "__main__":
    unittest.main()
