"""Execute every notebook in tutorials/ on tiny settings and check what each one produced."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import re
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import matplotlib.image as mpimg
import nbformat
import pytest
from nbclient import NotebookClient
from parameterized import parameterized

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 300
#: first cell of every test run: monai-afire's deprecated import paths raise, so the notebooks must use the new ones
STRICT_IMPORTS = (
    "import warnings\n"
    'warnings.filterwarnings("error", message=r"monai_afire\\..* is deprecated", category=DeprecationWarning)'
)


def execute(notebook: Path, out_dir: Path, cache_dir: Path) -> nbformat.NotebookNode:
    """Run ``notebook`` in a fresh ``python3`` kernel in quick mode, writing under ``out_dir``; return it executed.

    A first cell (:data:`STRICT_IMPORTS`) makes monai-afire's deprecation warnings errors.
    """
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(STRICT_IMPORTS))
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


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    """The error outputs of an executed notebook."""
    return [
        f"{output.get('ename')}: {output.get('evalue')}"
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def shown_figures(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def check_figure(case: unittest.TestCase, path: str, out_dir: Path) -> None:
    case.assertTrue(Path(path).is_relative_to(out_dir), path)
    picture = mpimg.imread(path)
    case.assertEqual(picture.ndim, 3, path)
    case.assertGreater(min(picture.shape[:2]), 100, path)
    case.assertGreater(float(picture.std()), 0.0, path)  # not a blank canvas


def imported_modules(notebook: Path) -> set[str]:
    """Top-level names of the modules a notebook's code cells import."""
    names = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def setup_requirements() -> dict[str, list[str]]:
    """install_requires and extras_require of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    values = {
        k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")
    }
    return {"install_requires": values["install_requires"], **values["extras_require"]}


def distribution_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


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

    def test_the_four_tutorials_are_listed_in_the_readme(self):
        expected = [
            "01_afire_quickstart.ipynb",
            "02_synthetic_lesions_in_monai_pipelines.ipynb",
            "03_few_label_classification_and_localisation.ipynb",
            "04_your_own_dicom_folder.ipynb",
        ]
        self.assertEqual([p.name for p in NOTEBOOKS], expected)
        readme = (TUTORIALS / "README.md").read_text()
        for name in expected:
            row = next((line for line in readme.splitlines() if line.startswith("|") and name in line), None)
            self.assertIsNotNone(row, f"tutorials/README.md has no table row for {name}")
            self.assertRegex(row, r"\d+ (s|min)", f"{name}: the README row gives no measured time")
        self.assertIn('pip install -e ".[tutorials]"', readme)

    @parameterized.expand([(p.name,) for p in NOTEBOOKS])
    def test_imports_are_in_the_tutorials_extra(self, name):
        """Every module a notebook imports comes with Python, monai-afire's requirements or the ``tutorials`` extra."""
        requirements = setup_requirements()
        required = {distribution_name(r) for r in requirements["install_requires"] + requirements["tutorials"]}
        provided_by = importlib.metadata.packages_distributions()
        for module in sorted(imported_modules(TUTORIALS / name)):
            if module in sys.stdlib_module_names or module == "monai_afire":
                continue
            distributions = {d.lower().replace("_", "-") for d in provided_by.get(module, [])}
            self.assertTrue(
                distributions & required,
                f"{name} imports {module} ({distributions or 'not installed'}), "
                "which neither install_requires nor the tutorials extra lists",
            )

    def test_tutorials_extra_keeps_what_tests_need(self):
        requirements = setup_requirements()
        tutorials = {distribution_name(r) for r in requirements["tutorials"]}
        self.assertTrue({"jupyter", "nbconvert", "nbclient", "ipykernel", "matplotlib"} <= tutorials, tutorials)
        self.assertTrue({"nbformat", "nbclient", "ipykernel"} <= {distribution_name(r) for r in requirements["test"]})


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


class _QuickRun(unittest.TestCase):
    """Run one notebook once in quick mode (so ``pytest -n`` never runs it twice), then each check in a subtest."""

    notebook_name = ""

    def run_checks(self, *checks):
        with tempfile.TemporaryDirectory() as tmp:
            self.out = Path(tmp) / "out"
            self.out.mkdir()
            self.notebook = execute(TUTORIALS / self.notebook_name, self.out, Path(tmp) / "cache")
            self.assertEqual(errors(self.notebook), [])
            self.results = json.loads((self.out / "results.json").read_text())
            self.assertTrue(self.results["quick"])
            for check in checks:
                with self.subTest(check=check.__name__):
                    check()


@pytest.mark.slow
class TestSyntheticLesions(_QuickRun):
    """``02_synthetic_lesions_in_monai_pipelines.ipynb``: options measured, a 3-D CT, caching, workers and seeds."""

    notebook_name = "02_synthetic_lesions_in_monai_pipelines.ipynb"

    def test_quick_run(self):
        self.run_checks(self.check_figures, self.check_options, self.check_ct, self.check_cache, self.check_seeding)

    def check_figures(self):
        self.assertEqual(set(self.results["figures"]), {"slm_gallery", "slm_options", "slm_ct"})
        for path in self.results["figures"].values():
            check_figure(self, path, self.out)
        self.assertEqual(shown_figures(self.notebook), len(self.results["figures"]))

    def check_options(self):
        stats = self.results["option_statistics"]
        expected = {
            "placement=inside", "placement=anywhere", "falloff=rectangle", "falloff=ellipse",
            "clip_scope=image", "clip_scope=lesion", "foreground_only=False", "foreground_only=True",
        }  # fmt: skip
        self.assertEqual(set(stats), expected)
        for values in stats.values():
            self.assertTrue(0 < values["abnormal_tokens"] <= 1 and 0 < values["lesion_area"] < 1, values)
        self.assertEqual(stats["clip_scope=lesion"]["changed_outside"], 0.0)  # only lesion pixels change
        self.assertGreater(stats["clip_scope=image"]["changed_outside"], 0.0)  # the ceiling clips the whole film
        self.assertLess(stats["falloff=ellipse"]["lesion_area"], stats["falloff=rectangle"]["lesion_area"])

    def check_ct(self):
        ct = self.results["ct"]
        self.assertEqual(len(ct["shape"]), 4)  # (C, X, Y, Z): the same transform on a volume
        self.assertEqual(ct["shape"][0], 1)
        self.assertGreater(ct["lesion_voxels"], 0)

    def check_cache(self):
        cache = self.results["cache"]
        self.assertEqual(cache["cached_item"], {"nested Compose": "str", "flat Compose": "MetaTensor"})
        self.assertTrue(cache["same_clean"])
        self.assertFalse(cache["same_lesion"])

    def check_seeding(self):
        seeding = self.results["seeding"]
        self.assertTrue(seeding["reproducible"])
        monai_loader, torch_loader = seeding["monai DataLoader"], seeding["torch DataLoader (no MONAI worker seeds)"]
        for summary in (monai_loader, torch_loader):
            self.assertEqual(summary["workers"], [0, 1])
            self.assertGreater(summary["positions_compared_across_workers"], 0)
        self.assertEqual(monai_loader["same_lesion_across_workers"], 0)
        self.assertLess(monai_loader["same_lesion_across_epochs"], monai_loader["items"])
        self.assertEqual(torch_loader["same_lesion_across_workers"], torch_loader["positions_compared_across_workers"])
        self.assertEqual(torch_loader["same_lesion_across_epochs"], torch_loader["items"])


@pytest.mark.slow
class TestFewLabelClassification(_QuickRun):
    """``03_few_label_classification_and_localisation.ipynb``: pre-training, four fine-tuning runs, their AUROC
    tables, localisation scores and figures, all through the bundles."""

    notebook_name = "03_few_label_classification_and_localisation.ipynb"

    def test_quick_run(self):
        self.run_checks(self.check_runs, self.check_auroc_tables, self.check_localization)

    def check_runs(self):
        runs = self.results["classification"]
        self.assertEqual(set(runs), {"AFiRe_0.01", "random_0.01", "AFiRe_0.1", "random_0.1"})
        for name, run in runs.items():
            root = Path(run["bundle_root"])
            self.assertTrue(root.is_relative_to(self.out), root)
            self.assertTrue((root / "models" / "model.pt").is_file(), name)
            self.assertGreater(run["train_labelled"], 0)
        for init in ("AFiRe", "random"):  # nested subsets: the 1 % lies inside the 10 %
            self.assertLessEqual(runs[f"{init}_0.01"]["train_labelled"], runs[f"{init}_0.1"]["train_labelled"])
        self.assertTrue((self.out / "pretrain" / "models" / "teacher_encoder.pt").is_file())

    def check_auroc_tables(self):
        for run in self.results["classification"].values():
            table = run["auroc"]
            self.assertEqual(set(table), {"Cardiomegaly", "Effusion", "Nodule", "mean"})
            for row in table.values():
                if int(row["defined"]):
                    low, auc, high = float(row["ci_low"]), float(row["auroc"]), float(row["ci_high"])
                    self.assertTrue(0.0 <= low <= auc <= high <= 1.0, row)
        text = (self.out / "auroc_table.md").read_text()
        self.assertEqual(text.count("\n| AFiRe |") + text.count("\n| random |"), 4)

    def check_localization(self):
        summary = self.results["localization"]["summary"]
        for method in ("gradcam", "lesion_probability", "residual"):
            self.assertIn(method, summary)
        figures = self.results["localization"]["figures"]
        self.assertEqual(len(figures), 3)
        for path in figures:
            check_figure(self, path, self.out)
        self.assertEqual(shown_figures(self.notebook), 3)


@pytest.mark.slow
class TestDicomFolder(_QuickRun):
    """``04_your_own_dicom_folder.ipynb``: a DICOM folder, pre-training on it, one feature file per film, retrieval."""

    notebook_name = "04_your_own_dicom_folder.ipynb"

    def test_quick_run(self):
        self.run_checks(self.check_dicom_folder, self.check_features, self.check_retrieval, self.check_figures)

    def check_dicom_folder(self):
        import pydicom

        files = sorted((self.out / "dicom").rglob("*.dcm"))
        expected = self.results["settings"]["num_films"] + self.results["settings"]["rg1_variants"]
        self.assertEqual(len(files), expected)
        photometric = {pydicom.dcmread(f, stop_before_pixels=True).PhotometricInterpretation for f in files}
        self.assertEqual(photometric, {"MONOCHROME1", "MONOCHROME2"})

    def check_features(self):
        written = sorted((self.out / "tokens").glob("*_tokens.npz"))
        self.assertEqual(len(written), self.results["retrieval"]["films"])
        self.assertEqual(len(written), len(list((self.out / "dicom").rglob("*.dcm"))))  # UID names kept apart
        self.assertTrue((self.out / "pretrain" / "models" / "teacher_encoder.pt").is_file())

    def check_retrieval(self):
        retrieval = self.results["retrieval"]
        self.assertEqual(len(retrieval["precision_at_k"]), 3)
        for score in retrieval["precision_at_k"].values():
            self.assertTrue(0.0 <= score <= 1.0 and math.isfinite(score), score)
        self.assertTrue(0.0 < retrieval["chance"] < 1.0)
        self.assertEqual(self.results["query"]["patient"], "RG1")
        self.assertEqual(len(self.results["query"]["neighbours"]), retrieval["k"])

    def check_figures(self):
        self.assertEqual(set(self.results["figures"]), {"dicom_films", "retrieval"})
        for path in self.results["figures"].values():
            check_figure(self, path, self.out)
        self.assertEqual(shown_figures(self.notebook), 2)


if __name__ == "__main__":
    unittest.main()
