from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

from matplotlib.image import imread

from monai_afire.visualize import plot_loss_curves


class TestPlotLossCurves(unittest.TestCase):
    def test_rows_and_csv(self):
        rows = [{"epoch": e, "loss": 3.0 / e, "structure": 1.0, "restoration": 0.5 / e} for e in range(1, 5)]
        with tempfile.TemporaryDirectory() as tmp:
            path = plot_loss_curves(rows, Path(tmp) / "sub" / "curves.png")
            image = imread(path)
            self.assertGreater(image.shape[1], image.shape[0])  # three panels side by side
            csv = Path(tmp) / "h.csv"
            csv.write_text("epoch,iteration,loss\n1,2,3.0\n2,4,2.5\n")
            self.assertTrue(plot_loss_curves(csv, Path(tmp) / "c.pdf").is_file())

    def test_bad_history(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(ValueError, "empty"):
                plot_loss_curves([], Path(tmp) / "x.png")
            with self.assertRaisesRegex(ValueError, "none of"):
                plot_loss_curves([{"epoch": 1, "acc": 0.5}], Path(tmp) / "x.png")
            with self.assertRaisesRegex(ValueError, "does not exist"):
                plot_loss_curves(Path(tmp) / "missing.csv", Path(tmp) / "x.png")


if __name__ == "__main__":
    unittest.main()
