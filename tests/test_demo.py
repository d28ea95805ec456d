import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg

from monai_afire import demo


def film_installed() -> bool:
    from pydicom.data import get_testdata_file

    try:
        return get_testdata_file(demo.DEMO_FILM, download=False) is not None
    except Exception:
        return False


class TestDemo(unittest.TestCase):
    def test_writes_the_gallery_and_prints_its_path(self):
        if not film_installed():
            self.skipTest("pydicom-data is not installed")
        with tempfile.TemporaryDirectory() as tmp, mock.patch("builtins.print") as printed:
            path = demo.main(["--out", str(Path(tmp) / "demo")])
            self.assertEqual(path, Path(tmp) / "demo" / "slm_gallery.png")
            picture = mpimg.imread(path)
            self.assertGreater(picture.shape[0], picture.shape[1])  # four rows of three panels
            self.assertIn(str(path), printed.call_args.args[0])

    def test_missing_film_names_the_package(self):
        with mock.patch("pydicom.data.get_testdata_file", return_value=None):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.main(["--out", "unused"])
        with mock.patch("pydicom.data.get_testdata_file", side_effect=ValueError("no such file")):
            with self.assertRaisesRegex(RuntimeError, "pip install pydicom-data"):
                demo.demo_film_path()


if __name__ == "__main__":
    unittest.main()
