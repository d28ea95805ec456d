import math
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg
import pytest
import torch

from monai_afire import demo
from monai_afire.data.simcxr_findings import FINDINGS
from monai_afire.visualize import read_loss_history


def film_installed() -> bool:
    from pydicom.data import get_testdata_file

    try:
        return get_testdata_file(demo.DEMO_FILM, download=False) is not None
    except Exception:
        return False


class TestDemo(unittest.TestCase):
    def test_writes_the_gallery(self):
        if not film_installed():
            self.skipTest("pydicom-data is not installed")
        with tempfile.TemporaryDirectory() as tmp:
            path = demo.write_slm_gallery(Path(tmp) / "demo", image_size=64)
            self.assertEqual(path, Path(tmp) / "demo" / "slm_gallery.png")
            picture = mpimg.imread(path)
            self.assertGreater(picture.shape[0], picture.shape[1])  # four rows of three panels

    @pytest.mark.slow
    def test_main_job_end_to_end_tiny(self):
        """``python -m monai_afire.demo`` with a tiny data set and one epoch writes and prints every output."""
        if not film_installed():
            self.skipTest("pydicom-data is not installed")
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"MONAI_AFIRE_CACHE": tmp}):
            with mock.patch("builtins.print") as printed:
                args = ["--out", str(Path(tmp) / "demo"), "--num-images", "30", "--epochs", "1", "--batch-size", "8"]
                args += ["--probe-images", "60"]
                outputs = demo.main(args)
            text = "\n".join(" ".join(map(str, c.args)) for c in printed.call_args_list)
            names = ("checkpoint", "teacher encoder (TorchScript)", "loss curves", "lesion gallery", "anomaly maps")
            for name in names:
                self.assertTrue(Path(outputs[name]).is_file(), name)
                self.assertIn(str(outputs[name]), text)
            probe = outputs["probe"]
            for key in ("afire", "random"):
                self.assertTrue(0.0 <= probe[key] <= 1.0, probe)
            self.assertGreater(probe["test_films"], 0)
            gap, low, high = probe["gap"]
            self.assertAlmostEqual(gap, probe["afire"] - probe["random"], places=6)
            self.assertLessEqual(low, high)
            self.assertIn("random encoder, same shape", text)
            self.assertIn(f"{probe['random']:.3f}", text)
            loc = outputs["localisation"]
            self.assertEqual(loc["test_films"], probe["test_films"])  # the probe step's held-out test films
            self.assertGreater(loc["cases"], 0)
            for key in ("afire", "random", "pixels"):
                self.assertTrue(0.0 <= loc["maps"][key]["pixel_auroc"] <= 1.0, loc)
                self.assertIn(f"{loc['maps'][key]['pixel_auroc']:.3f}", text)
            point = loc["gaps"]["afire-pixels"]["pixel_auroc"][0]
            self.assertAlmostEqual(point, loc["maps"]["afire"]["pixel_auroc"] - loc["maps"]["pixels"]["pixel_auroc"])
            self.assertIn("Label-free localisation", text)
            history = read_loss_history(outputs["loss history"])
            self.assertEqual(len(history), 1)
            self.assertTrue(all(math.isfinite(history[0][k]) for k in ("loss", "structure", "restoration")))
            self.assertGreater(history[0]["category"], 0.0)  # afire_plus.json: the lesion prototype is trained

    def test_localisation_step_tiny(self):
        """The localisation step on a few films: with the demo's model replaced by the random model of the same seed,
        the AFiRe - random gaps are exactly 0; the raw-pixel map is scored on the same cases. (12 s on 2 cores, most
        of it building the simulated films' phantom in a fresh cache.)"""
        from monai.bundle import ConfigParser

        parser = ConfigParser()
        parser.read_config(demo.DEMO_CONFIGS)
        torch.manual_seed(0)
        same_as_random = parser.get_parsed_content("network_def").eval()
        with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"MONAI_AFIRE_CACHE": tmp}):
            out = Path(tmp) / "demo"
            demo.ensure_simcxr(out / "simcxr", 6, prevalence=0.0)
            with mock.patch.object(demo, "demo_network", return_value=(same_as_random, 128)):
                loc = demo.localisation_gap(out, num_images=20, prevalence=0.5, num_samples=50)
            text = demo.localisation_text(loc)
        self.assertGreater(loc["cases"], 0)
        self.assertLessEqual(loc["films"], loc["test_films"])
        self.assertEqual(loc["maps"]["afire"], loc["maps"]["random"])
        zero = (0.0, 0.0, 0.0)
        self.assertEqual(loc["gaps"]["afire-random"], {"pixel_auroc": zero, "pointing_game": zero})
        for key in ("afire", "pixels"):
            self.assertTrue(0.0 <= loc["maps"][key]["pixel_auroc"] <= 1.0, loc)
            self.assertTrue(set(loc["per_finding"][key]) <= set(FINDINGS))
        point, low, high = loc["gaps"]["afire-pixels"]["pixel_auroc"]
        self.assertAlmostEqual(point, loc["maps"]["afire"]["pixel_auroc"] - loc["maps"]["pixels"]["pixel_auroc"])
        self.assertLessEqual(low, point)
        self.assertLessEqual(point, high)
        self.assertIn(f"{loc['maps']['pixels']['pixel_auroc']:.3f}", text)
        self.assertIn("+0.000 [+0.000, +0.000]", text)

    def test_missing_film_names_the_package(self):
        with mock.patch("pydicom.data.get_testdata_file", return_value=None):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.main(["--out", "unused"])
        with mock.patch("pydicom.data.get_testdata_file", side_effect=ValueError("no such file")):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.demo_film_path()


if __name__ == "__main__":
    unittest.main()
