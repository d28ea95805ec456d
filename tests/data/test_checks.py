"""The up-front check of image files: headers only, every bad file named, optional skipping (issue 12, finding 6)."""

from __future__ import annotations

import shutil
import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from parameterized import parameterized
from PIL import Image

from monai_afire.data import check_image_file, check_records, find_unreadable
from tests.tiny import TmpDirTestCase, write_films

TINY_CR = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"


class TestCheckImageFile(TmpDirTestCase):
    def test_good_files(self):
        write_films(self.tmp, n=1)
        Image.fromarray(np.zeros((8, 6), np.uint8)).save(self.tmp / "film.jpg")
        nib.save(nib.Nifti1Image(np.zeros((8, 6, 1), np.float32), np.eye(4)), self.tmp / "film.nii.gz")
        shutil.copy(TINY_CR, self.tmp / "film.dcm")
        shutil.copy(TINY_CR, self.tmp / "no_suffix")  # DICOM files often have no suffix
        for name in ("film_0.png", "film.jpg", "film.nii.gz", "film.dcm", "no_suffix"):
            self.assertIsNone(check_image_file(self.tmp / name), name)

    @parameterized.expand(
        [
            ("missing.png", None, "no such file"),
            ("empty.png", b"", "empty file"),
            ("text.png", b"not an image", "not a readable PNG/JPEG file (UnidentifiedImageError"),
            ("text.dcm", b"not a dicom file at all" * 10, "not a readable DICOM file"),
            ("text.nii.gz", b"not a nifti file" * 10, "not a readable NIfTI file"),
        ]
    )
    def test_bad_files(self, name, content, reason):
        if content is not None:
            (self.tmp / name).write_bytes(content)
        self.assertIn(reason, check_image_file(self.tmp / name))

    def test_header_only(self):
        """A PNG cut short after its header passes the cheap check (the pixels are not decoded)."""
        write_films(self.tmp, n=1, size=64)
        data = (self.tmp / "film_0.png").read_bytes()
        (self.tmp / "cut.png").write_bytes(data[: len(data) // 2])
        self.assertIsNone(check_image_file(self.tmp / "cut.png"))


class TestCheckRecords(TmpDirTestCase):
    def setUp(self):
        super().setUp()
        write_films(self.tmp, n=4)
        (self.tmp / "broken.png").write_bytes(b"not an image")
        (self.tmp / "empty.png").write_bytes(b"")
        self.records = [{"image": str(p), "label": i} for i, p in enumerate(sorted(self.tmp.glob("*.png")))]

    def test_names_every_bad_file(self):
        self.assertEqual(len(find_unreadable([r["image"] for r in self.records], num_threads=2)), 2)
        with self.assertRaises(ValueError) as ctx:
            check_records(self.records, what="training data")
        message = str(ctx.exception)
        self.assertIn("2 of the 6 image files of the training data cannot be read", message)
        self.assertIn("broken.png: not a readable PNG/JPEG file", message)
        self.assertIn("empty.png: empty file (0 bytes)", message)
        self.assertNotIn("film_1.png", message)
        self.assertIn("skip_unreadable", message)

    def test_skip_unreadable(self):
        with self.assertLogs("monai_afire.data.checks", level="WARNING") as logs:
            kept = check_records(self.records, skip_unreadable=True)
        self.assertEqual([Path(r["image"]).name for r in kept], [f"film_{i}.png" for i in range(4)])
        self.assertIn("left out 2 of 6 records", logs.output[0])
        self.assertIn("broken.png", logs.output[0])
        clean = [r for r in self.records if "film" in r["image"]]
        self.assertEqual(check_records(clean), clean)

    def test_nothing_readable(self):
        bad = [r for r in self.records if "film" not in r["image"]]
        with self.assertRaisesRegex(ValueError, "none of the 2 image files"):
            check_records(bad, skip_unreadable=True)


if __name__ == "__main__":
    unittest.main()
