import math
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg
import pytest

from monai_afire import demo
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
            history = read_loss_history(outputs["loss history"])
            self.assertEqual(len(history), 1)
            self.assertTrue(all(math.isfinite(history[0][k]) for k in ("loss", "structure", "restoration")))
            self.assertGreater(history[0]["category"], 0.0)  # afire_plus.json: the lesion prototype is trained

    def test_missing_film_names_the_package(self):
        with mock.patch("pydicom.data.get_testdata_file", return_value=None):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.main(["--out", "unused"])
        with mock.patch("pydicom.data.get_testdata_file", side_effect=ValueError("no such file")):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.demo_film_path()


if __name__ == "__main__":
    unittest.main()
