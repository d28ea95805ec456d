"""Label-fraction splits: nested, by patient, every class present, reproducible, shareable; patient hold-outs."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np

from monai_afire.data.splits import holdout_split, label_fraction_split, read_split_list, write_split_list


def _records(num_patients: int = 400, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for p in range(num_patients):
        for f in range(int(rng.integers(1, 4))):
            label = (rng.random(5) < [0.3, 0.1, 0.05, 0.0, 0.0]).astype(np.float32)
            records.append({"image": f"/data/images/{p:08d}_{f:03d}.png", "label": label, "patient_id": str(p)})
    records[len(records) // 3]["label"][3] = 1.0  # a class with a single positive image
    return records


def _patients(records: list[dict]) -> set[str]:
    return {r["patient_id"] for r in records}


class TestLabelFractionSplit(unittest.TestCase):
    def test_nested_by_patient_and_classes(self) -> None:
        records = _records()
        one = label_fraction_split(records, 0.01, seed=3)
        ten = label_fraction_split(records, 0.10, seed=3)
        full = label_fraction_split(records, 1.0, seed=3)
        self.assertEqual(len(full), len(records))
        self.assertLessEqual({r["image"] for r in one}, {r["image"] for r in ten})
        self.assertTrue(len(one) >= 0.01 * len(records) and len(one) < len(ten) < len(records))
        self.assertLess(abs(len(ten) - 0.1 * len(records)), 0.05 * len(records))
        for subset in (one, ten):
            # whole patients only
            pats = _patients(subset)
            self.assertEqual(sum(r["patient_id"] in pats for r in records), len(subset))
            present = np.stack([r["label"] for r in subset]).max(0)
            np.testing.assert_array_equal(present, [1, 1, 1, 1, 0])

    def test_reproducible_and_seed_dependent(self) -> None:
        records = _records()
        a = label_fraction_split(records, 0.1, seed=7)
        b = label_fraction_split(records, 0.1, seed=7)
        c = label_fraction_split(records, 0.1, seed=8)
        self.assertEqual([r["image"] for r in a], [r["image"] for r in b])
        self.assertNotEqual([r["image"] for r in a], [r["image"] for r in c])

    def test_errors(self) -> None:
        with self.assertRaisesRegex(ValueError, "fraction"):
            label_fraction_split(_records(5), 0.0)
        with self.assertRaisesRegex(ValueError, "no key 'site'"):
            label_fraction_split(_records(5), 0.5, group_by="site")

    def test_load_dataset_pair_is_named(self) -> None:
        """Issue 12, finding 2: load_dataset's (records, classes) passed whole gets a message saying what to do."""
        pair = (_records(5), ["A", "B", "C", "D", "E"])
        for split in (label_fraction_split, holdout_split):
            with self.assertRaisesRegex(TypeError, r"records, classes = load_dataset\(\.\.\.\)"):
                split(pair, 0.5)
        with self.assertRaisesRegex(TypeError, r"records\[1\] is a str, expected a record dict"):
            label_fraction_split([{"image": "a"}, "b.png"], 0.5)

    def test_write_read_roundtrip(self) -> None:
        records = _records(50)
        subset = label_fraction_split(records, 0.2, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            path = write_split_list(subset, tmp_path / "lists" / "train_10.txt")
            self.assertTrue(path.read_text().splitlines()[0].endswith(".png"))
            again = read_split_list(path, records)
            self.assertEqual([r["image"] for r in again], [r["image"] for r in subset])
            dup = [{"image": "/a/x.png"}, {"image": "/b/x.png"}]
            with self.assertRaisesRegex(ValueError, "repeat"):
                write_split_list(dup, tmp_path / "d.txt")
            write_split_list(dup, tmp_path / "d.txt", root="/")
            self.assertEqual((tmp_path / "d.txt").read_text().split(), ["a/x.png", "b/x.png"])
            with self.assertRaisesRegex(ValueError, "not among the records"):
                read_split_list(path, records[:3])


class TestHoldoutSplit(unittest.TestCase):
    def test_keeps_patients_whole(self) -> None:
        records = [{"image": f"{i}.png", "patient_id": f"p{i // 2}"} for i in range(20)]
        kept, held = holdout_split(records, 0.3, seed=0)
        self.assertEqual(len(kept) + len(held), 20)
        self.assertFalse({r["patient_id"] for r in kept} & {r["patient_id"] for r in held})
        self.assertEqual(len({r["patient_id"] for r in held}), 3)  # round(0.3 * 10 patients)
        self.assertEqual(holdout_split(records, 0.3, seed=0), (kept, held))
        self.assertEqual(holdout_split(records, 0.0), (records, []))
        with self.assertRaisesRegex(ValueError, r"fraction must be in \[0, 1\)"):
            holdout_split(records, 1.0)


if __name__ == "__main__":
    unittest.main()
