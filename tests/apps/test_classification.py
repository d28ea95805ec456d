"""Splits, class selection and transforms of the classification bundles."""

from __future__ import annotations

import unittest

import numpy as np
from parameterized import parameterized
from PIL import Image

from monai_afire.apps import (
    classification_splits,
    classification_transforms,
    inference_records,
    read_class_names,
    save_class_names,
)
from monai_afire.apps.classification import select_classes
from tests.tiny import TmpDirTestCase


def _records(n: int = 20) -> list[dict]:
    return [
        {"image": f"{i}.png", "patient_id": str(i // 2), "label": np.array([i % 2, i % 3 == 0, 0], np.float32)}
        for i in range(n)
    ]


class TestClassificationData(TmpDirTestCase):
    def test_select_classes_reorders_columns_and_keeps_keys(self):
        records = _records(4)
        out, names = select_classes(records, ["A", "B", "C"], ["B", "A"])
        self.assertEqual(names, ["B", "A"])
        for rec, new in zip(records, out):
            np.testing.assert_array_equal(new["label"], rec["label"][[1, 0]])
            self.assertEqual(new["patient_id"], rec["patient_id"])
            self.assertIsNot(new, rec)

    def test_select_classes_names_unknown_classes(self):
        with self.assertRaisesRegex(ValueError, "Fracture"):
            select_classes(_records(2), ["A", "B"], ["A", "Fracture"])

    @parameterized.expand([(0.0,), (-0.1,), (1.01,)])
    def test_label_fraction_outside_unit_interval(self, fraction):
        with self.assertRaisesRegex(ValueError, "label_fraction"):
            classification_splits("chestxray14", self.tmp, label_fraction=fraction)

    def test_unknown_dataset(self):
        with self.assertRaisesRegex(ValueError, "dataset must be one of"):
            classification_splits("padchest", self.tmp)

    def test_class_names_round_trip(self):
        save_class_names(["Nodule", "Mass"], self.tmp / "models")
        self.assertEqual(read_class_names(self.tmp / "models"), ["Nodule", "Mass"])
        with self.assertRaisesRegex(FileNotFoundError, "train the model first"):
            read_class_names(self.tmp)

    def test_transforms_give_square_image_and_float_label(self):
        Image.fromarray((np.arange(40 * 60) % 255).astype(np.uint8).reshape(40, 60)).save(self.tmp / "a.png")
        record = {"image": str(self.tmp / "a.png"), "label": np.array([1, 0], np.float32), "boxes": [[0, 0, 1, 1]]}
        for train in (False, True):
            out = classification_transforms(16, train=train)(dict(record))
            self.assertEqual(set(out), {"image", "label"})
            self.assertEqual(tuple(out["image"].shape), (1, 16, 16))
            self.assertGreaterEqual(float(out["image"].min()), 0.0)
            self.assertLessEqual(float(out["image"].max()), 1.0)
            self.assertTrue(str(out["label"].dtype).endswith("float32"))
        self.assertEqual(inference_records(self.tmp), [{"image": str(self.tmp / "a.png")}])


if __name__ == "__main__":
    unittest.main()
