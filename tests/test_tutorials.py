"""Execute every notebook in tutorials/ on tiny settings and check what each one produced."""

from __future__ import annotations

import json
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg
import nbformat
from nbclient import NotebookClient
from parameterized import parameterized

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 300


def execute(notebook: Path, out_dir: Path, cache_dir: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` in a fresh ``python3`` kernel in quick mode, writing under ``out_dir``; return it executed."""
    nb = nbformat.read(notebook, as_version=4)
    env = {
        "AFIRE_TUTORIAL_QUICK": "1",
        "AFIRE_TUTORIAL_OUT": str(out_dir),
        "MONAI_AFIRE_CACHE": str(cache_dir),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    with mock.patch.dict(os.environ, env):  # the kernel inherits this environment
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}}
        )
        client.execute()
    return nb


class TestTutorialFiles(unittest.TestCase):
    def test_there_are_notebooks(self):
        self.assertTrue(NOTEBOOKS, f"no notebook in {TUTORIALS}")

    @parameterized.expand([(p.name,) for p in NOTEBOOKS])
    def test_committed_without_outputs(self, name):
        nb = nbformat.read(TUTORIALS / name, as_version=4)
        nbformat.validate(nb)
        self.assertEqual(nb.metadata.kernelspec.name, "python3")
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                self.assertEqual(cell.outputs, [], f"{name} cell {index} has stored outputs")
                self.assertIsNone(cell.execution_count, f"{name} cell {index} has an execution count")


class TestQuickstart(unittest.TestCase):
    """``01_afire_quickstart.ipynb`` in quick mode: data, figures, a falling loss, a reloadable teacher encoder."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        tmp = Path(cls._tmp.name)
        cls.out = tmp / "out"
        cls.out.mkdir()
        cls.notebook = execute(TUTORIALS / "01_afire_quickstart.ipynb", cls.out, tmp / "cache")
        cls.results = json.loads((cls.out / "results.json").read_text())

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_ran_in_quick_mode_without_errors(self):
        self.assertTrue(self.results["quick"])
        for cell in self.notebook.cells:
            for output in cell.get("outputs", []):
                self.assertNotEqual(output.get("output_type"), "error", output.get("evalue"))

    def test_generated_the_simulated_set(self):
        data = self.out / "simcxr"
        meta = json.loads((data / "simcxr.json").read_text())
        self.assertEqual(meta["num_images"], self.results["settings"]["num_images"])
        self.assertEqual(len(list((data / "images").glob("*.png"))), meta["num_images"])
        self.assertEqual(self.results["num_train"] + self.results["num_test"], meta["num_images"])

    def test_figures_are_images(self):
        for name, path in self.results["figures"].items():
            with self.subTest(figure=name):
                self.assertTrue(Path(path).is_relative_to(self.out), path)
                picture = mpimg.imread(path)
                self.assertEqual(picture.ndim, 3)
                self.assertGreater(min(picture.shape[:2]), 100)
                self.assertGreater(float(picture.std()), 0.0)  # not a blank canvas

    def test_figures_are_shown_inline(self):
        shown = sum(
            "image/png" in output.get("data", {}) for cell in self.notebook.cells for output in cell.get("outputs", [])
        )
        self.assertEqual(shown, len(self.results["figures"]))

    def test_loss_fell(self):
        rows = self.results["loss_history"]
        self.assertEqual([int(r["epoch"]) for r in rows], list(range(1, self.results["settings"]["max_epochs"] + 1)))
        self.assertLess(rows[-1]["loss"], rows[0]["loss"])
        self.assertLess(rows[-1]["restoration"], rows[0]["restoration"])
        for key in ("structure", "category", "restoration"):
            self.assertIn(key, rows[0])
        csv_rows = (self.out / "train" / "loss_history.csv").read_text().strip().splitlines()
        self.assertEqual(len(csv_rows), len(rows) + 1)  # header + one row per epoch

    def test_anomaly_maps_match_the_image(self):
        size = self.results["settings"]["image_size"]
        self.assertEqual(self.results["anomaly_map_shape"], [1, 1, size, size])
        probability = self.results["anomaly_scores"]["lesion_probability"]
        for where in ("inside", "outside"):
            self.assertGreaterEqual(probability[where], 0.0)
            self.assertLessEqual(probability[where], 1.0)

    def test_teacher_encoder_reloads(self):
        self.assertTrue(Path(self.results["teacher_encoder"]).is_file())
        self.assertEqual(self.results["encoder_difference"], 0.0)


if __name__ == "__main__":
    unittest.main()
