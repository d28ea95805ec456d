"""Readers on tiny fixtures written in each dataset's official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture
def nih_root(tmp_path: Path) -> Path:
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


def test_chestxray14_reads_official_layout(nih_root: Path) -> None:
    records, classes = load_chestxray14(nih_root)
    assert classes == list(CHESTXRAY14_CLASSES) and len(classes) == 14
    assert len(records) == 3
    first = records[0]
    assert first["image"].endswith("images_001/images/00000001_000.png")
    assert first["label"].dtype == np.float32
    assert [classes[i] for i in np.flatnonzero(first["label"])] == ["Cardiomegaly", "Effusion"]
    assert records[1]["label"].sum() == 0 and records[1]["follow_up"] == 1
    third = records[2]
    assert third["patient_id"] == "2"
    assert third["boxes"] == [[10.5, 20.0, 40.5, 60.0], [1.0, 2.0, 4.0, 6.0]]
    assert third["box_labels"] == ["Infiltration", "Infiltration"]
    assert third["label"][classes.index("Infiltration")] == 1


def test_chestxray14_splits(nih_root: Path) -> None:
    train, _ = load_chestxray14(nih_root, split="train_val")
    test, _ = load_chestxray14(nih_root, split="test")
    assert [Path(r["image"]).name for r in train] == ["00000001_000.png", "00000001_001.png"]
    assert [Path(r["image"]).name for r in test] == ["00000002_000.png"]
    with pytest.raises(ValueError, match="split"):
        load_chestxray14(nih_root, split="val")


def test_chestxray14_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Data_Entry_2017"):
        load_chestxray14(tmp_path)
    _touch(tmp_path / "images" / "a.png")
    _nih(tmp_path, ["a.png,Flu,0,1,1,M,PA,1,1,1,1,"])
    with pytest.raises(ValueError, match=r"row 2: unknown finding 'Flu'"):
        load_chestxray14(tmp_path)
    _nih(tmp_path, ["b.png,No Finding,0,1,1,M,PA,1,1,1,1,"])
    with pytest.raises(FileNotFoundError, match=r"row 2: the image .*b\.png does not exist"):
        load_chestxray14(tmp_path)
    assert len(load_chestxray14(tmp_path, check_files=False)[0]) == 1
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Patient ID\na.png,1\n")
    with pytest.raises(ValueError, match="lacks the column.*Finding Labels"):
        load_chestxray14(tmp_path)
    _nih(tmp_path, ["a.png,No Finding,0,1,1,M,PA,1,1,1,1,"], ["a.png,Flu,1,2,3,4,,,"])
    with pytest.raises(ValueError, match=r"BBox_List_2017.csv, row 2: unknown finding 'Flu'"):
        load_chestxray14(tmp_path)


CHEXPERT_HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
    "Fracture,Support Devices\n"
)


@pytest.fixture
def chexpert_root(tmp_path: Path) -> Path:
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


@pytest.mark.parametrize("policy,expected", [("ones", 1.0), ("zeros", 0.0)])
def test_chexpert_uncertainty(chexpert_root: Path, policy: str, expected: float) -> None:
    records, classes = load_chexpert(chexpert_root, uncertainty=policy)
    assert classes == ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
    assert len(records) == 3
    np.testing.assert_array_equal(records[0]["label"], np.zeros(5))
    np.testing.assert_array_equal(records[1]["label"], [expected] * 5)
    assert records[1]["patient_id"] == "patient00002"
    assert Path(records[0]["image"]).is_file()


def test_chexpert_ignore_and_frontal(chexpert_root: Path) -> None:
    records, _ = load_chexpert(chexpert_root, uncertainty="ignore", frontal_only=True)
    assert len(records) == 2
    assert np.isnan(records[1]["label"]).all()
    np.testing.assert_array_equal(records[1]["label_mask"], np.zeros(5))
    np.testing.assert_array_equal(records[0]["label_mask"], np.ones(5))


def test_chexpert_errors(chexpert_root: Path) -> None:
    with pytest.raises(ValueError, match="uncertainty"):
        load_chexpert(chexpert_root, uncertainty="maybe")
    with pytest.raises(ValueError, match="Unknown CheXpert class"):
        load_chexpert(chexpert_root, classes=["Flu"])
    with pytest.raises(FileNotFoundError, match="valid.csv"):
        load_chexpert(chexpert_root, split="valid")


def test_rsna_groups_boxes(tmp_path: Path) -> None:
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\nabc,,,,,0\ndef,264.0,152.0,213.0,379.0,1\ndef,562.0,152.0,256.0,453.0,1\n"
    )
    _touch(tmp_path / "stage_2_train_images" / "abc.dcm")
    _touch(tmp_path / "stage_2_train_images" / "def.dcm")
    records, classes = load_rsna_pneumonia(tmp_path)
    assert classes == ["Pneumonia"] and len(records) == 2
    assert records[0]["label"][0] == 0 and records[0]["boxes"] == []
    assert records[1]["label"][0] == 1
    assert records[1]["boxes"] == [[264.0, 152.0, 477.0, 531.0], [562.0, 152.0, 818.0, 605.0]]
    (tmp_path / "stage_2_train_images" / "abc.dcm").unlink()
    with pytest.raises(FileNotFoundError, match=r"row 2: the image .*abc\.dcm"):
        load_rsna_pneumonia(tmp_path)


def test_vindr_merges_radiologists(tmp_path: Path) -> None:
    (tmp_path / "annotations_train.csv").write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        "img1,R1,No finding,,,,\n"
        "img2,R2,Cardiomegaly,10,20,30,40\n"
        "img2,R3,Cardiomegaly,11,21,31,41\n"
        "img2,R3,Nodule/Mass,5,5,9,9\n"
    )
    for i in ("img1", "img2"):
        _touch(tmp_path / "train" / f"{i}.dicom")
    records, classes = load_vindr_cxr(tmp_path)
    assert len(records) == 2 and records[0]["label"].sum() == 0
    rec = records[1]
    assert {classes[i] for i in np.flatnonzero(rec["label"])} == {"Cardiomegaly", "Nodule/Mass"}
    assert len(rec["boxes"]) == 3 and rec["box_raters"] == ["R2", "R3", "R3"]
    (tmp_path / "annotations_train.csv").write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nimg1,R1,Flu,1,1,2,2\n"
    )
    with pytest.raises(ValueError, match="row 2: unknown finding 'Flu'"):
        load_vindr_cxr(tmp_path)


def test_csv_dataset(tmp_path: Path) -> None:
    _touch(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("file,x,y\na.png,1,\n")
    records, classes = load_csv_dataset(tmp_path / "t.csv", "file", ["x", "y"])
    assert classes == ["x", "y"]
    np.testing.assert_array_equal(records[0]["label"], [1, 0])
    with pytest.raises(ValueError, match="lacks the column.*'z'"):
        load_csv_dataset(tmp_path / "t.csv", "file", ["z"])
    (tmp_path / "t.csv").write_text("file,x\na.png,yes\n")
    with pytest.raises(ValueError, match="row 2, column 'x': expected a number"):
        load_csv_dataset(tmp_path / "t.csv", "file", ["x"])


def test_image_folder(tmp_path: Path) -> None:
    for p in ("cats/b.PNG", "cats/a.png", "dogs/x.nii.gz", "dogs/readme.txt"):
        _touch(tmp_path / p)
    records, classes = load_image_folder(tmp_path)
    assert classes == [] and [Path(r["image"]).name for r in records] == ["a.png", "b.PNG", "x.nii.gz"]
    assert set(records[0]) == {"image"}
    records, classes = load_image_folder(tmp_path, class_folders=True)
    assert classes == ["cats", "dogs"]
    np.testing.assert_array_equal(records[-1]["label"], [0, 1])
    with pytest.raises(ValueError, match="No image"):
        load_image_folder(tmp_path, extensions=(".jpg",))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_image_folder(tmp_path / "none")


def test_load_dataset_dispatch(nih_root: Path, tmp_path: Path) -> None:
    assert len(load_dataset("chestxray14", nih_root)[0]) == 3
    assert len(load_dataset("simcxr", nih_root, split="test")[0]) == 1
    with pytest.raises(ValueError, match="Unknown dataset 'padchest'"):
        load_dataset("padchest", nih_root)


def test_mimic_cxr(tmp_path: Path) -> None:
    import gzip

    labels = ",".join(CHEXPERT_HEADER.strip().split(",")[5:])
    blank = "," * 13
    (tmp_path / "mimic-cxr-2.0.0-chexpert.csv").write_text(
        f"subject_id,study_id,{labels}\n10000032,50414267,1.0{blank}\n10000032,53189527,,,1.0,,,,,,-1.0,,,,,\n"
    )
    with gzip.open(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz", "wt") as f:
        f.write(
            "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition\n"
            "d1,10000032,50414267,CHEST (PA AND LAT),PA\n"
            "d2,10000032,50414267,CHEST (PA AND LAT),LATERAL\n"
            "d3,10000032,53189527,CHEST (PA AND LAT),AP\n"
            "d4,10000032,99999999,CHEST (PA AND LAT),PA\n"
        )
    (tmp_path / "mimic-cxr-2.0.0-split.csv").write_text(
        "dicom_id,study_id,subject_id,split\nd1,50414267,10000032,train\nd3,53189527,10000032,test\n"
    )
    for d, study in (("d1", "50414267"), ("d3", "53189527")):
        _touch(tmp_path / "files" / "p10" / "p10000032" / f"s{study}" / f"{d}.jpg")
    records, classes = load_mimic_cxr(tmp_path)
    assert len(classes) == 14 and [Path(r["image"]).stem for r in records] == ["d1", "d3"]
    assert records[0]["label"][classes.index("No Finding")] == 1 and records[0]["patient_id"] == "10000032"
    assert records[1]["label"][classes.index("Cardiomegaly")] == 1
    assert records[1]["label"][classes.index("Atelectasis")] == 1  # uncertain -> 1 with "ones"
    assert [Path(r["image"]).stem for r in load_mimic_cxr(tmp_path, normal_only=True)[0]] == ["d1"]
    assert [Path(r["image"]).stem for r in load_mimic_cxr(tmp_path, split="test")[0]] == ["d3"]
    ignored, _ = load_mimic_cxr(tmp_path, uncertainty="ignore")
    assert np.isnan(ignored[1]["label"][classes.index("Atelectasis")])
    assert ignored[1]["label_mask"][classes.index("Atelectasis")] == 0
    assert len(load_dataset("mimic", tmp_path, views=None, check_files=False)[0]) == 3
    with pytest.raises(FileNotFoundError, match=r"row 3: the image .*d2\.jpg"):
        load_mimic_cxr(tmp_path, views=None)
    (tmp_path / "mimic-cxr-2.0.0-split.csv").unlink()
    with pytest.raises(FileNotFoundError, match="mimic-cxr-2.0.0-split.csv"):
        load_mimic_cxr(tmp_path, split="train")
