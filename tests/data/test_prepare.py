"""python -m monai_afire.data.prepare: training-size PNGs from DICOM/PNG/JPEG films, resumable, readable unchanged."""

import contextlib
import csv
import io
import os
import shutil
import unittest
from pathlib import Path

import numpy as np
import pydicom
from parameterized import parameterized
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from monai_afire.apps import classification_transforms, pretraining_records, pretraining_transforms
from monai_afire.data import load_dataset, prepare_film, prepare_films, prepared_name
from monai_afire.data.prepare import FAILED, MANIFEST, TMP_SUFFIX, main
from monai_afire.transforms import LoadRadiograph, PrepareRadiograph, radiograph_transforms
from tests.tiny import TmpDirTestCase

TINY_CR = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"


def film_pixels(rows=18, cols=26, seed=0) -> np.ndarray:
    """A film-like picture: brighter in the middle, a gradient and some noise; integers 0-4000."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    picture = 2500 * np.exp(-(x**2 + y**2)) + 600 * x + 300 * rng.random((rows, cols)) + 800
    return np.clip(picture, 0, 4000).astype(np.uint16)


def write_dicom(path: Path, pixels: np.ndarray, photometric="MONOCHROME2", slope=1.0, intercept=0.0) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_image(path: Path, pixels: np.ndarray, mode="L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray((pixels / pixels.max() * 255).astype(np.uint8))
    image.convert(mode).save(path)
    return path


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def run_main(*argv) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the command line."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


class TestPrepareFilm(TmpDirTestCase):
    @parameterized.expand([("a/b/c.dcm", "a/b/c.png"), ("x.PNG", "x.png"), ("d/e.nii.gz", "d/e.png"), ("f", "f.png")])
    def test_prepared_name(self, relative, expected):
        self.assertEqual(prepared_name(relative), expected)

    @parameterized.expand([(8, np.uint8, "L"), (16, np.uint16, "I;16")])
    def test_monochrome1_cr_matches_pipeline(self, bits, dtype, mode):
        self.assertEqual(pydicom.dcmread(TINY_CR).PhotometricInterpretation, "MONOCHROME1")
        target = self.tmp / "cr.png"
        record = prepare_film(TINY_CR, target, size=24, bits=bits)
        with Image.open(target) as image:
            self.assertEqual(image.mode, mode)
            self.assertEqual(image.size, (24, 24))
        stored = png(target)
        self.assertEqual(stored.dtype, dtype)
        self.assertEqual((record["source_width"], record["source_height"]), (16, 16))
        top = 2**bits - 1
        expected = PrepareRadiograph(24, pad=False)(LoadRadiograph()(TINY_CR))[0].numpy().T
        np.testing.assert_allclose(stored / top, expected, atol=0.5 / top + 1e-6)
        self.assertGreater(stored.std(), 0)

    @parameterized.expand(
        [
            ("mono2", "MONOCHROME2", 1.0, 0.0),
            ("mono1_rescaled", "MONOCHROME1", 2.5, -1024.0),
            ("slope", "MONOCHROME2", 0.5, 7.0),
        ]
    )
    def test_dicom_rescale_and_inversion(self, _, photometric, slope, intercept):
        pixels = film_pixels()
        source = write_dicom(self.tmp / "film.dcm", pixels, photometric, slope, intercept)
        target = self.tmp / "film.png"
        prepare_film(source, target, size=26, bits=16, lower_percentile=0, upper_percentile=100)
        stored = png(target).astype(np.float64) / 65535
        self.assertEqual(stored.shape, (18, 26))  # rows, columns as in the film: no resize at the longest side
        values = pixels * slope + intercept
        if photometric == "MONOCHROME1":
            values = values.max() + values.min() - values
        np.testing.assert_allclose(stored, (values - values.min()) / (values.max() - values.min()), atol=1e-5)

    @parameterized.expand([("grey.jpg", "L"), ("colour.png", "RGB"), ("palette.png", "P")])
    def test_png_and_jpeg(self, name, mode):
        source = write_image(self.tmp / name, film_pixels(40, 30).astype(np.float64), mode)
        target = self.tmp / "out" / "film.png"
        record = prepare_film(source, target, size=20, bits=8)
        stored = png(target)
        self.assertEqual(stored.shape, (20, 15))
        self.assertEqual((record["width"], record["height"]), (15, 20))
        # the pipeline reads the prepared film as it reads the source, up to quantisation and a re-stretch: the
        # percentiles of a prepared film lie a fraction of a quantum inside [0, 1] (about 1 % in this 20 x 15 film)
        from_source = radiograph_transforms(20)({"image": str(source)})["image"].numpy()
        from_prepared = radiograph_transforms(20)({"image": str(target)})["image"].numpy()
        self.assertEqual(from_prepared.shape, (1, 20, 20))
        np.testing.assert_allclose(from_prepared, from_source, atol=0.02)
        self.assertLess(float(np.abs(from_prepared - from_source).mean()), 2.0 / 255)

    def test_bad_settings(self):
        with self.assertRaisesRegex(ValueError, "bits must be 8 or 16"):
            prepare_film(TINY_CR, self.tmp / "x.png", bits=12)
        with self.assertRaisesRegex(RuntimeError, "absent.dcm"):
            prepare_film(self.tmp / "absent.dcm", self.tmp / "x.png")
        self.assertFalse((self.tmp / "x.png").exists())


class TestPrepareFolder(TmpDirTestCase):
    def setUp(self):
        super().setUp()
        root = self.tmp
        self.src, self.out = root / "src", root / "out"
        write_dicom(self.src / "p1" / "s1" / "a.dcm", film_pixels(30, 24, 1), "MONOCHROME1", 2.0, -10.0)
        shutil.copy(TINY_CR, self.src / "p1" / "cr.dcm")
        write_image(self.src / "p2" / "b.png", film_pixels(20, 36, 2).astype(np.float64))
        write_image(self.src / "p2" / "c.jpeg", film_pixels(36, 20, 3).astype(np.float64))
        (self.src / "notes.txt").write_text("not a film\n")
        self.expected = ["p1/cr.png", "p1/s1/a.png", "p2/b.png", "p2/c.png"]

    def prepared(self) -> list[str]:
        return sorted(
            p.relative_to(self.out).as_posix() for p in self.out.rglob("*") if p.is_file() and p.suffix == ".png"
        )

    def test_relative_paths_sizes_and_manifest(self):
        summary = prepare_films(self.src, self.out, size=32, bits=16, workers=0, progress=False)
        self.assertEqual((summary.converted, summary.skipped, summary.failed), (4, 0, []))
        self.assertEqual(self.prepared(), self.expected)
        for name in self.expected:
            with Image.open(self.out / name) as image:
                self.assertEqual(image.mode, "I;16")
                self.assertEqual(max(image.size), 32)
        with open(self.out / MANIFEST, newline="") as f:
            rows = {r["image"]: r for r in csv.DictReader(f)}
        self.assertEqual(sorted(rows), self.expected)
        self.assertEqual(rows["p2/c.png"]["source"], "p2/c.jpeg")
        self.assertEqual((rows["p1/s1/a.png"]["source_width"], rows["p1/s1/a.png"]["width"]), ("24", "26"))
        self.assertEqual((self.out / "notes.txt").read_text(), "not a film\n")
        self.assertFalse((self.out / FAILED).exists())
        # the pre-training bundle's folder reader reads the prepared folder
        records = pretraining_records(self.out, "folder")
        self.assertEqual(sorted(Path(r["image"]).relative_to(self.out).as_posix() for r in records), self.expected)
        sample = pretraining_transforms(32)(records[0])
        self.assertEqual(tuple(sample["image"].shape), (1, 32, 32))

    def test_resume_skips_done_and_finishes_half_done(self):
        prepare_films(self.src, self.out, size=16, workers=0, progress=False)
        stamps = {n: os.stat(self.out / n).st_mtime_ns for n in self.expected}
        again = prepare_films(self.src, self.out, size=16, workers=0, progress=False)
        self.assertEqual((again.converted, again.skipped), (0, 4))
        self.assertEqual({n: os.stat(self.out / n).st_mtime_ns for n in self.expected}, stamps)
        # a half-done run: one film missing, one cut short by a writer without atomic renames, a stale temporary
        (self.out / "p2" / "b.png").unlink()
        data = (self.out / "p1" / "cr.png").read_bytes()
        (self.out / "p1" / "cr.png").write_bytes(data[: len(data) // 2])
        stale = self.out / "p2" / f".c.png.123{TMP_SUFFIX}"
        stale.write_bytes(b"half")
        # a source that changed since it was prepared is redone
        source = self.src / "p2" / "c.jpeg"
        os.utime(source, ns=(os.stat(source).st_atime_ns, os.stat(source).st_mtime_ns + 10**9))
        finished = prepare_films(self.src, self.out, size=16, workers=0, progress=False)
        self.assertEqual((finished.converted, finished.skipped), (3, 1))
        self.assertFalse(stale.exists())
        self.assertEqual(self.prepared(), self.expected)
        self.assertEqual(png(self.out / "p1" / "cr.png").shape, (16, 16))
        # other settings redo everything
        other = prepare_films(self.src, self.out, size=16, bits=16, workers=0, progress=False)
        self.assertEqual((other.converted, other.skipped), (4, 0))

    def test_unreadable_listed_rest_converted_in_parallel(self):
        (self.src / "p2" / "broken.png").write_text("not an image")
        status, printed, errors = run_main(
            "--src", self.src, "--out", self.out, "--size", 16, "--workers", 2, "--no-progress"
        )
        self.assertEqual(status, 0)
        self.assertIn("4 converted", printed)
        self.assertIn("1 unreadable", printed)
        self.assertIn("p2/broken.png", errors)
        self.assertEqual(self.prepared(), self.expected)
        with open(self.out / FAILED, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["source"] for r in rows], ["p2/broken.png"])
        self.assertIn("cannot read", rows[0]["error"])
        status, printed, _ = run_main("--src", self.src, "--out", self.out, "--size", 16, "--workers", 0, "--strict")
        self.assertEqual(status, 1)
        self.assertIn("4 already done", printed)

    def test_bad_arguments(self):
        cases = [
            (("--src", self.src / "absent", "--out", self.out), "does not exist"),
            (("--src", self.src, "--out", self.src / "inside"), "must not be --src"),
            (("--src", self.src, "--out", self.out, "--bits", "12"), "invalid choice"),
            (("--src", self.src, "--out", self.out, "--size", "0"), "size must be >= 1"),
            (("--src", self.src, "--out", self.out, "--workers", "-1"), "workers must be >= 0"),
            (("--src", self.src, "--out", self.out, "--dataset", "nope"), "Unknown dataset 'nope'"),
            (("--src", self.src, "--out", self.out, "--reader-arg", "split"), "KEY=VALUE"),
            (("--src", self.src, "--out", self.out, "--extensions", ".bmp"), "no film found"),
            (("--src", self.src, "--out", self.out, "--compress-level", "10"), "compress_level"),
        ]
        for argv, message in cases:
            status, _, errors = run_main(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn(message, errors, argv)
        write_image(self.src / "p2" / "b.jpg", film_pixels(10, 10).astype(np.float64))
        status, _, errors = run_main("--src", self.src, "--out", self.out)
        self.assertEqual(status, 2)
        self.assertIn("would both be prepared as p2/b.png", errors)
        self.assertFalse(self.out.exists())
        status, printed, _ = run_main("--help")
        self.assertEqual(status, 0)
        for option in ("--src", "--out", "--size", "--bits", "--workers", "--dataset", "--strict", "--reader-arg"):
            self.assertIn(option, printed)


NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)


class TestPrepareDatasets(TmpDirTestCase):
    def test_chestxray14_layout_reads_unchanged(self):
        src, out = self.tmp / "nih", self.tmp / "nih-32"
        sizes = {"00000001_000.png": (64, 48), "00000001_001.png": (40, 40), "00000002_000.png": (48, 64)}
        for i, (name, (width, height)) in enumerate(sizes.items()):
            folder = "images_002/images" if name.startswith("00000002") else "images_001/images"
            write_image(src / folder / name, film_pixels(height, width, i).astype(np.float64))
        write_image(src / "images_001" / "images" / "unlisted.png", film_pixels(20, 20).astype(np.float64))
        (src / "Data_Entry_2017.csv").write_text(
            NIH_HEADER
            + "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA,64,48,0.143,0.143,\n"
            + "00000001_001.png,No Finding,1,1,58,M,PA,40,40,0.143,0.143,\n"
            + "00000002_000.png,Infiltration,0,2,81,F,AP,48,64,0.168,0.168,\n"
        )
        (src / "BBox_List_2017.csv").write_text(
            "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000002_000.png,Infiltrate,8,16,24,32,,,\n"
        )
        (src / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n")
        (src / "test_list.txt").write_text("00000002_000.png\n")
        summary = prepare_films(src, out, size=32, workers=0, dataset="chestxray14", progress=False)
        self.assertEqual((summary.converted, summary.failed), (3, []))
        self.assertFalse((out / "images_001" / "images" / "unlisted.png").exists())  # only the data set's films
        self.assertEqual(
            sorted(summary.tables), ["BBox_List_2017.csv", "Data_Entry_2017.csv", "test_list.txt", "train_val_list.txt"]
        )
        for split in (None, "train_val", "test"):
            original, classes = load_dataset("chestxray14", src, split=split)
            prepared, prepared_classes = load_dataset("chestxray14", out, split=split)
            self.assertEqual(prepared_classes, classes)
            self.assertEqual(len(prepared), len(original))
            for a, b in zip(original, prepared):
                self.assertEqual(Path(b["image"]).relative_to(out), Path(a["image"]).relative_to(src))
                np.testing.assert_array_equal(a["label"], b["label"])
                self.assertEqual(a["patient_id"], b["patient_id"])
        record = load_dataset("chestxray14", out, split="test")[0][0]
        self.assertEqual(png(record["image"]).shape, (32, 24))
        # boxes follow the films: 48 x 64 -> 24 x 32 is a factor 0.5 on both axes
        np.testing.assert_allclose(record["boxes"], [[4, 8, 16, 24]])
        # the classification pipeline reads a prepared film
        sample = classification_transforms(32)({"image": record["image"], "label": record["label"]})
        self.assertEqual(tuple(sample["image"].shape), (1, 32, 32))

    def test_chexpert_table_paths_renamed(self):
        src, out = self.tmp / "CheXpert-v1.0-small", self.tmp / "prepared" / "CheXpert-v1.0-small"
        rel = "train/patient00001/study1/view1_frontal.jpg"
        write_image(src / rel, film_pixels(30, 24).astype(np.float64))
        (src / "train.csv").write_text(
            "Path,Sex,Frontal/Lateral,Atelectasis,Cardiomegaly,Consolidation,Edema,Pleural Effusion\n"
            f"CheXpert-v1.0-small/{rel},Male,Frontal,1.0,,0.0,-1.0,\n"
        )
        summary = prepare_films(src, out, size=16, workers=0, dataset="chexpert", progress=False)
        self.assertEqual(summary.converted, 1)
        self.assertIn("view1_frontal.png", (out / "train.csv").read_text())
        records, _ = load_dataset("chexpert", out)
        self.assertEqual(Path(records[0]["image"]), out / rel.replace(".jpg", ".png"))
        np.testing.assert_array_equal(records[0]["label"], load_dataset("chexpert", src)[0][0]["label"])

    def test_missing_dataset_film_is_listed(self):
        src, out = self.tmp / "nih", self.tmp / "out"
        write_image(src / "images" / "a.png", film_pixels(20, 20).astype(np.float64))
        (src / "Data_Entry_2017.csv").write_text(
            NIH_HEADER + "a.png,No Finding,0,1,1,M,PA,20,20,0.1,0.1,\nb.png,No Finding,0,2,1,M,PA,20,20,0.1,0.1,\n"
        )
        summary = prepare_films(src, out, size=16, workers=0, dataset="nih", progress=False)
        self.assertEqual(summary.converted, 1)
        self.assertEqual([f[0] for f in summary.failed], ["images/b.png"])
        self.assertIn("no such file", summary.failed[0][1])


if __name__ == "__main__":
    unittest.main()
