"""Execute every notebook in tutorials/ on tiny settings and check what each one produced."""

from __future__ import annotations

import json
import math
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg
import nbformat
import pytest
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


@pytest.mark.slow
class TestQuickstart(unittest.TestCase):
    """``01_afire_quickstart.ipynb`` in quick mode: data, figures, a falling loss, a reloadable teacher encoder.

    One test method runs the notebook once (so ``pytest -n`` never runs it twice) and checks each output in a subtest.
    """

    def test_quick_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.out = Path(tmp) / "out"
            self.out.mkdir()
            self.notebook = execute(TUTORIALS / "01_afire_quickstart.ipynb", self.out, Path(tmp) / "cache")
            self.results = json.loads((self.out / "results.json").read_text())
            for check in (
                self.check_no_errors,
                self.check_simulated_set,
                self.check_figures,
                self.check_loss_fell,
                self.check_anomaly_maps,
                self.check_teacher_encoder,
            ):
                with self.subTest(check=check.__name__):
                    check()

    def check_no_errors(self):
        self.assertTrue(self.results["quick"])
        for cell in self.notebook.cells:
            for output in cell.get("outputs", []):
                self.assertNotEqual(output.get("output_type"), "error", output.get("evalue"))

    def check_simulated_set(self):
        data = self.out / "simcxr"
        meta = json.loads((data / "simcxr.json").read_text())
        self.assertEqual(meta["num_images"], self.results["settings"]["num_images"])
        self.assertEqual(len(list((data / "images").glob("*.png"))), meta["num_images"])
        self.assertEqual(self.results["num_train"] + self.results["num_test"], meta["num_images"])

    def check_figures(self):
        for name, path in self.results["figures"].items():
            self.assertTrue(Path(path).is_relative_to(self.out), path)
            picture = mpimg.imread(path)
            self.assertEqual(picture.ndim, 3, name)
            self.assertGreater(min(picture.shape[:2]), 100, name)
            self.assertGreater(float(picture.std()), 0.0, name)  # not a blank canvas
        shown = sum(
            "image/png" in output.get("data", {}) for cell in self.notebook.cells for output in cell.get("outputs", [])
        )
        self.assertEqual(shown, len(self.results["figures"]))  # each figure is displayed inline

    def check_loss_fell(self):
        rows = self.results["loss_history"]
        self.assertEqual([int(r["epoch"]) for r in rows], list(range(1, self.results["settings"]["max_epochs"] + 1)))
        for key in ("structure", "category", "restoration"):
            self.assertIn(key, rows[0])
        self.assertLess(rows[-1]["loss"], rows[0]["loss"])
        self.assertLess(rows[-1]["restoration"], rows[0]["restoration"])
        csv_rows = (self.out / "train" / "loss_history.csv").read_text().strip().splitlines()
        self.assertEqual(len(csv_rows), len(rows) + 1)  # header + one row per epoch

    def check_anomaly_maps(self):
        size = self.results["settings"]["image_size"]
        self.assertEqual(self.results["anomaly_map_shape"], [1, 1, size, size])
        scores = self.results["anomaly_scores"]
        self.assertEqual(set(scores), {"lesion_probability", "residual"})
        for name, means in scores.items():
            inside, outside = means["inside"], means["outside"]
            self.assertTrue(math.isfinite(inside) and math.isfinite(outside), name)
            self.assertGreaterEqual(min(inside, outside), 0.0, name)
            self.assertNotEqual(inside, outside, f"{name}: the map does not vary over the film")
        self.assertLessEqual(max(scores["lesion_probability"].values()), 1.0)

    def check_teacher_encoder(self):
        self.assertTrue(Path(self.results["teacher_encoder"]).is_file())
        self.assertEqual(self.results["encoder_difference"], 0.0)


if __name__ == "__main__":
    unittest.main()
