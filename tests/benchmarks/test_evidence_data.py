import tempfile
import unittest
from pathlib import Path

import numpy as np

from benchmarks.evidence_study.data import FINDINGS, ClosedTestSplit, generate_films, load_downstream


class TestDownstreamData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        folder = generate_films(root / "films", 40, 3, 32, prevalence=0.3, test_fraction=0.3)
        cls.data = load_downstream(folder, root / "cache", 32, val_fraction=0.3)
        cls.root = root

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_test_split_is_closed_until_the_choices_are_written(self):
        data = load_downstream(self.root / "films", self.root / "cache", 32, val_fraction=0.3)
        with self.assertRaises(ClosedTestSplit):
            data.test()
        with self.assertRaisesRegex(FileNotFoundError, "choices"):
            data.freeze(self.root / "missing.json")
        self.assertFalse(data.frozen)
        (self.root / "choices.json").write_text("{}")
        data.freeze(self.root / "choices.json")
        self.assertEqual(len(data.test()), len(data.test().labels))

    def test_no_patient_crosses_splits_and_fractions_are_nested(self):
        data = load_downstream(self.root / "films", self.root / "cache", 32, val_fraction=0.3)
        (self.root / "choices.json").write_text("{}")
        data.freeze(self.root / "choices.json")
        sets = {s.name: set(s.patients) for s in (data.train, data.val, data.test())}
        self.assertTrue(all(sets.values()))
        self.assertFalse(sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
        self.assertEqual(sum(len(s) for s in (data.train, data.val, data.test())), 40)
        previous = None
        for fraction in (0.1, 0.5, 1.0):
            idx = set(data.fraction_index(fraction).tolist())
            patients = set(data.train.patients[list(idx)])
            whole = {i for i, p in enumerate(data.train.patients) if p in patients}
            self.assertEqual(idx, whole)  # whole patients only
            if previous is not None:
                self.assertTrue(previous <= idx)  # nested
            previous = idx
        self.assertEqual(previous, set(range(len(data.train))))

    def test_labels_masks_and_boxes_share_the_films_layout(self):
        val = self.data.val
        self.assertEqual(val.labels.shape, (len(val), len(FINDINGS)))
        self.assertEqual(tuple(val.images.shape), (len(val), 1, 32, 32))
        checked = 0
        for i in range(len(val)):
            for box, name in zip(val.boxes[i], val.box_labels[i]):
                c = FINDINGS.index(name)
                self.assertEqual(val.labels[i, c], 1.0)
                if len([n for n in val.box_labels[i] if n == name]) > 1:
                    continue
                xs, ys = np.nonzero(val.masks[i, c])  # first array axis = x (image width), as MONAI reads PNG
                self.assertEqual([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [int(v) for v in box])
                checked += 1
        self.assertGreater(checked, 0)


if __name__ == "__main__":
    unittest.main()
