"""Readers on tiny fixtures written in each dataset's official layout."""

from __future__ import annotations

import unittest
from pathlib import Path

import numpy as np
from parameterized import parameterized

from monai_afire.data.datasets import (
    CHESTXRAY14_CLASSES,
    load_chestxray14,
    load_chexpert,
    load_csv_dataset,
    load_dataset,
    load_image_folder,
    load_mimic_cxr,
    load_rsna_pneumonia,
    load_vindr_cxr,
)
from tests.tiny import TmpDirTestCase

NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)
NIH_BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG")


def _nih(root: Path, rows: list[str], boxes: list[str] | None = None) -> Path:
    (root / "Data_Entry_2017.csv").write_text(NIH_HEADER + "".join(r + "\n" for r in rows))
    if boxes is not None:
        (root / "BBox_List_2017.csv").write_text(NIH_BBOX_HEADER + "".join(b + "\n" for b in boxes))
    return root


def _nih_root(tmp_path: Path) -> Path:
    for name in ("00000001_000.png", "00000001_001.png"):
        _touch(tmp_path / "images_001" / "images" / name)
    _touch(tmp_path / "images_002" / "images" / "00000002_000.png")
    _nih(
        tmp_path,
        [
            "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,2682,2749,0.143,0.143,",
            "00000001_001.png,No Finding,1,1,58,M,PA,2894,2729,0.143,0.143,",
            "00000002_000.png,Infiltration,0,2,81,F,AP,2500,2048,0.168,0.168,",
        ],
        ["00000002_000.png,Infiltrate,10.5,20,30,40,,,", "00000002_000.png,Infiltrate,1,2,3,4,,,"],
    )
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n")
    (tmp_path / "test_list.txt").write_text("00000002_000.png\n")
    return tmp_path


CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices\n"
)


def _chexpert_root(tmp_path: Path) -> Path:
    root = tmp_path / "CheXpert-v1.0-small"
    rows = [
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0",
        "CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,"
        "-1.0,,-1.0,,-1.0,,1.0,",
        "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Female,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,",
    ]
    root.mkdir()
    (root / "train.csv").write_text(CHEXPERT_HEADER + "".join(r + "\n" for r in rows))
    for r in rows:
        _touch(tmp_path / r.split(",")[0])
    return root


class TestReaders(TmpDirTestCase):
    def test_chestxray14_reads_official_layout(self):
        nih_root = _nih_root(self.tmp)
        records, classes = load_chestxray14(nih_root)
        self.assertEqual(classes, list(CHESTXRAY14_CLASSES))
        self.assertEqual(len(classes), 14)
        self.assertEqual(len(records), 3)
        first = records[0]
        self.assertTrue(first["image"].endswith("images_001/images/00000001_000.png"))
        self.assertEqual(first["label"].dtype, np.float32)
        self.assertEqual([classes[i] for i in np.flatnonzero(first["label"])], ["Cardiomegaly", "Effusion"])
        self.assertEqual(records[1]["label"].sum(), 0)
        self.assertEqual(records[1]["follow_up"], 1)
        third = records[2]
        self.assertEqual(third["patient_id"], "2")
        self.assertEqual(third["boxes"], [[10.5, 20.0, 40.5, 60.0], [1.0, 2.0, 4.0, 6.0]])
        self.assertEqual(third["box_labels"], ["Infiltration", "Infiltration"])
        self.assertEqual(third["label"][classes.index("Infiltration")], 1)

    def test_chestxray14_splits(self):
        nih_root = _nih_root(self.tmp)
        train, _ = load_chestxray14(nih_root, split="train_val")
        test, _ = load_chestxray14(nih_root, split="test")
        self.assertEqual([Path(r["image"]).name for r in train], ["00000001_000.png", "00000001_001.png"])
        self.assertEqual([Path(r["image"]).name for r in test], ["00000002_000.png"])
        with self.assertRaisesRegex(ValueError, "split"):
            load_chestxray14(nih_root, split="val")

    def test_chestxray14_errors(self):
        with self.assertRaisesRegex(FileNotFoundError, "Data_Entry_2017"):
            load_chestxray14(self.tmp)
        _touch(self.tmp / "images" / "a.png")
        _nih(self.tmp, ["a.png,Flu,0,1,1,M,PA,1,1,1,1,"])
        with self.assertRaisesRegex(ValueError, r"row 2: unknown finding 'Flu'"):
            load_chestxray14(self.tmp)
        _nih(self.tmp, ["b.png,No Finding,0,1,1,M,PA,1,1,1,1,"])
        with self.assertRaisesRegex(FileNotFoundError, r"row 2: the image .*b\.png does not exist"):
            load_chestxray14(self.tmp)
        self.assertEqual(len(load_chestxray14(self.tmp, check_files=False)[0]), 1)
        (self.tmp / "Data_Entry_2017.csv").write_text("Image Index,Patient ID\na.png,1\n")
        with self.assertRaisesRegex(ValueError, "lacks the column.*Finding Labels"):
            load_chestxray14(self.tmp)
        _nih(self.tmp, ["a.png,No Finding,0,1,1,M,PA,1,1,1,1,"], ["a.png,Flu,1,2,3,4,,,"])
        with self.assertRaisesRegex(ValueError, r"BBox_List_2017.csv, row 2: unknown finding 'Flu'"):
            load_chestxray14(self.tmp)

    @parameterized.expand([("ones", 1.0), ("zeros", 0.0)])
    def test_chexpert_uncertainty(self, policy, expected):
        chexpert_root = _chexpert_root(self.tmp)
        records, classes = load_chexpert(chexpert_root, uncertainty=policy)
        self.assertEqual(classes, ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"])
        self.assertEqual(len(records), 3)
        np.testing.assert_array_equal(records[0]["label"], np.zeros(5))
        np.testing.assert_array_equal(records[1]["label"], [expected] * 5)
        self.assertEqual(records[1]["patient_id"], "patient00002")
        self.assertTrue(Path(records[0]["image"]).is_file())

    def test_chexpert_ignore_and_frontal(self):
        chexpert_root = _chexpert_root(self.tmp)
        records, _ = load_chexpert(chexpert_root, uncertainty="ignore", frontal_only=True)
        self.assertEqual(len(records), 2)
        self.assertTrue(np.isnan(records[1]["label"]).all())
        np.testing.assert_array_equal(records[1]["label_mask"], np.zeros(5))
        np.testing.assert_array_equal(records[0]["label_mask"], np.ones(5))

    def test_chexpert_errors(self):
        chexpert_root = _chexpert_root(self.tmp)
        with self.assertRaisesRegex(ValueError, "uncertainty"):
            load_chexpert(chexpert_root, uncertainty="maybe")
        with self.assertRaisesRegex(ValueError, "Unknown CheXpert class"):
            load_chexpert(chexpert_root, classes=["Flu"])
        with self.assertRaisesRegex(FileNotFoundError, "valid.csv"):
            load_chexpert(chexpert_root, split="valid")

    def test_rsna_groups_boxes(self):
        (self.tmp / "stage_2_train_labels.csv").write_text(
            "patientId,x,y,width,height,Target\nabc,,,,,0\ndef,264.0,152.0,213.0,379.0,1\ndef,562.0,152.0,256.0,453.0,1\n"
        )
        _touch(self.tmp / "stage_2_train_images" / "abc.dcm")
        _touch(self.tmp / "stage_2_train_images" / "def.dcm")
        records, classes = load_rsna_pneumonia(self.tmp)
        self.assertEqual(classes, ["Pneumonia"])
        self.assertEqual(len(records), 2)
        self.assertEqual(records[0]["label"][0], 0)
        self.assertEqual(records[0]["boxes"], [])
        self.assertEqual(records[1]["label"][0], 1)
        self.assertEqual(records[1]["boxes"], [[264.0, 152.0, 477.0, 531.0], [562.0, 152.0, 818.0, 605.0]])
        (self.tmp / "stage_2_train_images" / "abc.dcm").unlink()
        with self.assertRaisesRegex(FileNotFoundError, r"row 2: the image .*abc\.dcm"):
            load_rsna_pneumonia(self.tmp)

    def test_vindr_merges_radiologists(self):
        (self.tmp / "annotations_train.csv").write_text(
            "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
            "img1,R1,No finding,,,,\n"
            "img2,R2,Cardiomegaly,10,20,30,40\n"
            "img2,R3,Cardiomegaly,11,21,31,41\n"
            "img2,R3,Nodule/Mass,5,5,9,9\n"
        )
        for i in ("img1", "img2"):
            _touch(self.tmp / "train" / f"{i}.dicom")
        records, classes = load_vindr_cxr(self.tmp)
        self.assertEqual(len(records), 2)
        self.assertEqual(records[0]["label"].sum(), 0)
        rec = records[1]
        self.assertEqual({classes[i] for i in np.flatnonzero(rec["label"])}, {"Cardiomegaly", "Nodule/Mass"})
        self.assertEqual(len(rec["boxes"]), 3)
        self.assertEqual(rec["box_raters"], ["R2", "R3", "R3"])
        (self.tmp / "annotations_train.csv").write_text(
            "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nimg1,R1,Flu,1,1,2,2\n"
        )
        with self.assertRaisesRegex(ValueError, "row 2: unknown finding 'Flu'"):
            load_vindr_cxr(self.tmp)

    def test_csv_dataset(self):
        _touch(self.tmp / "a.png")
        (self.tmp / "t.csv").write_text("file,x,y\na.png,1,\n")
        records, classes = load_csv_dataset(self.tmp / "t.csv", "file", ["x", "y"])
        self.assertEqual(classes, ["x", "y"])
        np.testing.assert_array_equal(records[0]["label"], [1, 0])
        with self.assertRaisesRegex(ValueError, "lacks the column.*'z'"):
            load_csv_dataset(self.tmp / "t.csv", "file", ["z"])
        (self.tmp / "t.csv").write_text("file,x\na.png,yes\n")
        with self.assertRaisesRegex(ValueError, "row 2, column 'x': expected a number"):
            load_csv_dataset(self.tmp / "t.csv", "file", ["x"])

    def test_image_folder(self):
        for p in ("cats/b.PNG", "cats/a.png", "dogs/x.nii.gz", "dogs/readme.txt"):
            _touch(self.tmp / p)
        records, classes = load_image_folder(self.tmp)
        self.assertEqual(classes, [])
        self.assertEqual([Path(r["image"]).name for r in records], ["a.png", "b.PNG", "x.nii.gz"])
        self.assertEqual(set(records[0]), {"image"})
        records, classes = load_image_folder(self.tmp, class_folders=True)
        self.assertEqual(classes, ["cats", "dogs"])
        np.testing.assert_array_equal(records[-1]["label"], [0, 1])
        with self.assertRaisesRegex(ValueError, "No image"):
            load_image_folder(self.tmp, extensions=(".jpg",))
        with self.assertRaisesRegex(FileNotFoundError, "not a directory"):
            load_image_folder(self.tmp / "none")

    def test_load_dataset_dispatch(self):
        nih_root = _nih_root(self.tmp)
        self.assertEqual(len(load_dataset("chestxray14", nih_root)[0]), 3)
        self.assertEqual(len(load_dataset("simcxr", nih_root, split="test")[0]), 1)
        with self.assertRaisesRegex(ValueError, "Unknown dataset 'padchest'"):
            load_dataset("padchest", nih_root)

    def test_mimic_cxr(self):
        import gzip

        labels = ",".join(CHEXPERT_HEADER.strip().split(",")[5:])
        blank = "," * 13
        (self.tmp / "mimic-cxr-2.0.0-chexpert.csv").write_text(
            f"subject_id,study_id,{labels}\n10000032,50414267,1.0{blank}\n10000032,53189527,,,1.0,,,,,,-1.0,,,,,\n"
        )
        with gzip.open(self.tmp / "mimic-cxr-2.0.0-metadata.csv.gz", "wt") as f:
            f.write(
                "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition\n"
                "d1,10000032,50414267,CHEST (PA AND LAT),PA\n"
                "d2,10000032,50414267,CHEST (PA AND LAT),LATERAL\n"
                "d3,10000032,53189527,CHEST (PA AND LAT),AP\n"
                "d4,10000032,99999999,CHEST (PA AND LAT),PA\n"
            )
        (self.tmp / "mimic-cxr-2.0.0-split.csv").write_text(
            "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,train\nd3,53189527,10000032,test\n"
        )
        for d, study in (("d1", "50414267"), ("d3", "53189527")):
            _touch(self.tmp / "files" / "p10" / "p10000032" / f"s{study}" / f"{d}.jpg")
        records, classes = load_mimic_cxr(self.tmp)
        self.assertEqual(len(classes), 14)
        self.assertEqual([Path(r["image"]).stem for r in records], ["d1", "d3"])
        self.assertEqual(records[0]["label"][classes.index("No Finding")], 1)
        self.assertEqual(records[0]["patient_id"], "10000032")
        self.assertEqual(records[1]["label"][classes.index("Cardiomegaly")], 1)
        self.assertEqual(records[1]["label"][classes.index("Atelectasis")], 1)
        self.assertEqual([Path(r["image"]).stem for r in load_mimic_cxr(self.tmp, normal_only=True)[0]], ["d1"])
        self.assertEqual([Path(r["image"]).stem for r in load_mimic_cxr(self.tmp, split="test")[0]], ["d3"])
        ignored, _ = load_mimic_cxr(self.tmp, uncertainty="ignore")
        self.assertTrue(np.isnan(ignored[1]["label"][classes.index("Atelectasis")]))
        self.assertEqual(ignored[1]["label_mask"][classes.index("Atelectasis")], 0)
        self.assertEqual(len(load_dataset("mimic", self.tmp, views=None, check_files=False)[0]), 3)
        with self.assertRaisesRegex(FileNotFoundError, r"row 3: the image .*d2\.jpg"):
            load_mimic_cxr(self.tmp, views=None)
        (self.tmp / "mimic-cxr-2.0.0-split.csv").unlink()
        with self.assertRaisesRegex(FileNotFoundError, "mimic-cxr-2.0.0-split.csv"):
            load_mimic_cxr(self.tmp, split="train")


if __name__ == "__main__":
    unittest.main()
