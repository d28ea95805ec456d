"""Splits, class selection and transforms of the classification bundles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_afire.engines import (
    classification_splits,
    classification_transforms,
    holdout_split,
    inference_records,
    read_class_names,
    save_class_names,
    select_classes,
)


def _records(n: int = 20) -> list[dict]:
    return [
        {"image": f"{i}.png", "patient_id": str(i // 2), "label": np.array([i % 2, i % 3 == 0, 0], np.float32)}
        for i in range(n)
    ]


def test_select_classes_reorders_columns_and_keeps_keys():
    records = _records(4)
    out, names = select_classes(records, ["A", "B", "C"], ["B", "A"])
    assert names == ["B", "A"]
    for rec, new in zip(records, out):
        np.testing.assert_array_equal(new["label"], rec["label"][[1, 0]])
        assert new["patient_id"] == rec["patient_id"] and new is not rec


def test_select_classes_names_unknown_classes():
    with pytest.raises(ValueError, match="Fracture"):
        select_classes(_records(2), ["A", "B"], ["A", "Fracture"])


def test_holdout_split_keeps_patients_whole():
    records = _records(40)
    kept, held = holdout_split(records, 0.25, seed=1)
    assert len(kept) + len(held) == 40 and held
    assert not {r["patient_id"] for r in kept} & {r["patient_id"] for r in held}
    assert holdout_split(records, 0.25, seed=1)[1] == held  # same seed, same split
    assert holdout_split(records, 0.0)[1] == []
    with pytest.raises(ValueError, match="fraction"):
        holdout_split(records, 1.0)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01])
def test_label_fraction_outside_unit_interval(tmp_path, fraction):
    with pytest.raises(ValueError, match="label_fraction"):
        classification_splits("chestxray14", tmp_path, label_fraction=fraction)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        classification_splits("mimic", tmp_path)


def test_class_names_round_trip(tmp_path):
    save_class_names(["Nodule", "Mass"], tmp_path / "models")
    assert read_class_names(tmp_path / "models") == ["Nodule", "Mass"]
    with pytest.raises(FileNotFoundError, match="train the model first"):
        read_class_names(tmp_path)


def test_transforms_give_square_image_and_float_label(tmp_path):
    Image.fromarray((np.arange(40 * 60) % 255).astype(np.uint8).reshape(40, 60)).save(tmp_path / "a.png")
    record = {"image": str(tmp_path / "a.png"), "label": np.array([1, 0], np.float32), "boxes": [[0, 0, 1, 1]]}
    for train in (False, True):
        out = classification_transforms(16, train=train)(dict(record))
        assert set(out) == {"image", "label"}
        assert tuple(out["image"].shape) == (1, 16, 16)
        assert float(out["image"].min()) >= 0.0 and float(out["image"].max()) <= 1.0
        assert out["label"].dtype == np.float32 or str(out["label"].dtype).endswith("float32")
    assert inference_records(tmp_path) == [{"image": str(tmp_path / "a.png")}]
