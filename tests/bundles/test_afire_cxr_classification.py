"""End-to-end runs of the afire_cxr_classification bundle on a tiny simulated set through ConfigWorkflow."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from monai.bundle import verify_metadata
from parameterized import parameterized
from sklearn.metrics import roc_auc_score

from monai_afire.networks import AFiRe, AFiReEncoder
from tests.tiny import (
    AFIRE,
    BUNDLE_OVERRIDES,
    CLASSIFICATION_CONFIGS,
    ENCODER,
    TmpDirTestCase,
    error_messages,
    run_bundle,
    simulated_set,
)

SCHEMA = Path(__file__).resolve().parent / "bundle_schema.json"
CLASSES = ["Cardiomegaly", "Effusion", "Nodule"]


def _overrides(root: Path, sim_dir: Path | str, **extra) -> dict:
    values = {
        **BUNDLE_OVERRIDES,
        "bundle_root": str(root),
        "dataset": "simcxr",
        "dataset_dir": str(sim_dir),
        "classes": CLASSES,
        "val_fraction": 0.3,
        "max_epochs": 2,
        "warmup_epochs": 1,
        "num_bootstrap": 50,
    }
    values.update(extra)
    return values


def _run(configs: list[str], workflow_type: str, **overrides):
    return run_bundle([CLASSIFICATION_CONFIGS / c for c in configs], workflow_type, **overrides)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestBundleFiles(TmpDirTestCase):
    def test_metadata_is_valid(self):
        schema = json.loads(SCHEMA.read_text())
        jsonschema.validate(json.loads((CLASSIFICATION_CONFIGS / "metadata.json").read_text()), schema)
        # the same check through MONAI, offline: verify_metadata downloads nothing when the schema file exists
        verify_metadata(meta_file=str(CLASSIFICATION_CONFIGS / "metadata.json"), filepath=str(SCHEMA))
        for name in ("train", "linear_probe", "evaluate", "inference", "localize", "multi_gpu_train"):
            json.loads((CLASSIFICATION_CONFIGS / f"{name}.json").read_text())
        self.assertTrue((CLASSIFICATION_CONFIGS.parent / "docs" / "README.md").is_file())

    @parameterized.expand(
        [
            ("zero_fraction", {"label_fraction": 0.0}, "label_fraction must be in (0, 1]"),
            ("large_fraction", {"label_fraction": 1.5}, "label_fraction must be in (0, 1]"),
            ("unknown_dataset", {"dataset": "mimic"}, "dataset must be one of"),
        ]
    )
    def test_bad_configuration_before_reading_data(self, _, extra, message):
        over = _overrides(self.tmp / "bundle", self.tmp / "no_data", **extra)
        with self.assertRaises((ValueError, RuntimeError)) as err:
            _run(["train.json"], "train", **over)
        self.assertIn(message, error_messages(err.exception))


@pytest.mark.slow
class TestClassificationBundleRuns(TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        """About 30 simulated 32-pixel films with three findings, and a tiny AFiRe pre-training checkpoint."""
        cls._data = tempfile.TemporaryDirectory()
        root = Path(cls._data.name)
        prevalence = {"Cardiomegaly": 0.5, "Effusion": 0.4, "Nodule": 0.5}
        cls.sim_dir = simulated_set(root, 30, seed=3, image_size=32, prevalence=prevalence, test_fraction=0.3)
        torch.manual_seed(0)
        # trained with the lesion prototype (afire_plus.json), so that localisation has all three maps
        model = AFiRe(AFiReEncoder(mlp_dim=64, **ENCODER), lesion_prototype=True, **AFIRE)
        cls.afire_checkpoint = root / "afire_checkpoint_10.pt"  # the pre-trainer's format: {"model": state dict}
        torch.save({"model": model.state_dict()}, cls.afire_checkpoint)

    @classmethod
    def tearDownClass(cls):
        cls._data.cleanup()

    def test_finetune_evaluate_infer_localize(self):
        root = self.tmp / "bundle"
        over = _overrides(root, self.sim_dir, pretrained_checkpoint=str(self.afire_checkpoint))
        _run(["train.json"], "train", **over)
        self.assertTrue((root / "models" / "model.pt").is_file())
        self.assertEqual(json.loads((root / "models" / "classes.json").read_text()), CLASSES)
        self.assertTrue(any(p.name.startswith("events.out.tfevents") for p in (root / "eval").iterdir()))

        _run(["train.json", "evaluate.json"], "train", **over)
        rows = _read_csv(root / "eval" / "auroc.csv")
        self.assertEqual([r["class"] for r in rows], [*CLASSES, "mean"])
        predictions = _read_csv(root / "eval" / "predictions.csv")
        test_names = (self.sim_dir / "test_list.txt").read_text().split()
        self.assertEqual(len(predictions), len(test_names))
        defined = []
        for row in rows[:-1]:  # each AUROC is the one of the written predictions
            y = [float(p[f"label_{row['class']}"]) for p in predictions]
            s = [float(p[f"prob_{row['class']}"]) for p in predictions]
            self.assertEqual(row["defined"], "1" if 0 < sum(y) < len(y) else "0")
            if row["defined"] == "1":
                self.assertAlmostEqual(float(row["auroc"]), roc_auc_score(y, s), places=4)
                defined.append(float(row["auroc"]))
        self.assertTrue(defined)
        self.assertAlmostEqual(float(rows[-1]["auroc"]), float(np.mean(defined)), places=4)
        table = (root / "eval" / "auroc.md").read_text()
        self.assertTrue(all(c in table for c in CLASSES))
        self.assertIn("95% CI", table)

        inference = {k: v for k, v in over.items() if k not in ("dataset", "classes", "val_fraction", "max_epochs")}
        inference.update(dataset_dir=str(self.sim_dir / "images"), pretrained_checkpoint=None)
        for key in ("warmup_epochs", "num_bootstrap"):
            inference.pop(key)
        workflow = _run(["inference.json"], "infer", **inference)
        probs = _read_csv(root / "eval" / "probabilities.csv")
        self.assertEqual(len(probs), len(list((self.sim_dir / "images").iterdir())))
        self.assertEqual(list(probs[0]), ["image", *CLASSES])
        # the rows are the trained model's sigmoid outputs for the named files
        network = workflow.parser.get_parsed_content("network").eval()
        preprocessing = workflow.parser.get_parsed_content("preprocessing")
        for row in probs[:2]:
            with torch.no_grad():
                expected = torch.sigmoid(network(preprocessing({"image": row["image"]})["image"][None]))[0]
            np.testing.assert_allclose([float(row[c]) for c in CLASSES], expected.numpy(), rtol=1e-4, atol=1e-5)

        _run(["train.json", "localize.json"], "train", **over, afire_checkpoint=str(self.afire_checkpoint), **AFIRE)
        for method in ("gradcam", "lesion_probability", "residual"):
            text = (root / "eval" / f"localization_{method}.md").read_text()
            for column in ("pointing_game", "hit@0.5", "pixel_auroc", "**all**"):
                self.assertIn(column, text)
            self.assertGreater((root / "eval" / f"localization_{method}.png").stat().st_size, 0)
        self.assertIn("gradcam", (root / "eval" / "localization.md").read_text())

    def test_linear_probe_keeps_pretrained_encoder(self):
        root = self.tmp / "bundle"
        over = _overrides(
            root, self.sim_dir, pretrained_checkpoint=str(self.afire_checkpoint), max_epochs=1, warmup_epochs=0
        )
        _run(["train.json", "linear_probe.json"], "train", **over)
        saved = torch.load(root / "models" / "model.pt", weights_only=True)
        teacher = torch.load(self.afire_checkpoint, weights_only=True)["model"]
        encoder_keys = [k for k in saved if k.startswith("encoder.")]
        self.assertTrue(encoder_keys)
        for key in encoder_keys:
            self.assertTrue(torch.equal(saved[key], teacher["teacher." + key]), key)
        self.assertFalse(torch.equal(saved["head.weight"], torch.zeros_like(saved["head.weight"])))

    def test_multi_gpu_config_runs_as_one_process_group(self):
        """torchrun's environment for one process: DDP over gloo on the CPU, in a child process (the process group
        and Ignite's distributed state must not leak into the other tests)."""
        root = self.tmp / "bundle"
        over = _overrides(root, self.sim_dir, max_epochs=1, warmup_epochs=0)
        over.pop("device")
        script = f"""
import json, sys, torch
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.bundles.test_afire_cxr_classification import _run
workflow = _run(["train.json", "multi_gpu_train.json"], "train", **json.loads({json.dumps(json.dumps(over))}))
assert not torch.distributed.is_initialized()
print(type(workflow.parser.get_parsed_content("train#sampler")).__name__)
"""
        env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(_free_port()), CUDA_VISIBLE_DEVICES="")  # fmt: skip
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertEqual(done.stdout.strip().splitlines()[-1], "DistributedSampler")
        self.assertTrue((root / "models" / "model.pt").is_file())

    def test_unknown_class_is_named(self):
        over = _overrides(self.tmp / "bundle", self.sim_dir, classes=["Cardiomegaly", "Not a finding"])
        with self.assertRaises((ValueError, RuntimeError)) as err:
            _run(["train.json"], "train", **over)
        self.assertIn("Not a finding", error_messages(err.exception))

    def test_checkpoint_of_another_size_is_refused(self):
        other = AFiRe(AFiReEncoder(**{**ENCODER, "hidden_size": 48}), **AFIRE)
        path = self.tmp / "other.pt"
        torch.save({"model": other.state_dict()}, path)
        over = _overrides(self.tmp / "bundle", self.sim_dir, pretrained_checkpoint=str(path))
        with self.assertRaises((ValueError, RuntimeError)) as err:
            _run(["train.json"], "train", **over)
        self.assertIn("not an encoder of the configured size", error_messages(err.exception))

    def test_inference_needs_a_trained_model(self):
        over = {
            k: v
            for k, v in _overrides(self.tmp / "bundle", self.sim_dir).items()
            if k in ("bundle_root", "image_size", "patch_size", "num_workers")
        }
        with self.assertRaises((FileNotFoundError, RuntimeError)) as err:
            _run(["inference.json"], "infer", **over, dataset_dir=str(self.sim_dir / "images"))
        self.assertIn("train the model first", error_messages(err.exception))


if __name__ == "__main__":
    unittest.main()
