"""The afire_pretrain bundle's evaluate.json (anatomy cohesion of a checkpoint) end to end on a tiny simulated set."""

from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import pytest
import torch

from monai_afire.networks import AFiRe, AFiReEncoder
from tests.tiny import (
    AFIRE,
    BUNDLE_OVERRIDES,
    ENCODER,
    PRETRAIN_CONFIGS,
    TmpDirTestCase,
    error_messages,
    run_bundle,
    simulated_set,
)


def _table_row(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return dict(zip(header, (c.strip() for c in lines[2].strip("|").split("|"))))


@pytest.mark.slow
class TestPretrainEvaluate(TmpDirTestCase):
    @classmethod
    def setUpClass(cls):
        """A handful of simulated 32-pixel films, most of them normal, with anatomy maps."""
        cls._data = tempfile.TemporaryDirectory()
        cls.sim_dir = simulated_set(Path(cls._data.name), 10, seed=5, image_size=32, prevalence={"Nodule": 0.2})

    @classmethod
    def tearDownClass(cls):
        cls._data.cleanup()

    def _run(self, root: Path, **extra):
        overrides = {**BUNDLE_OVERRIDES, "bundle_root": str(root), "dataset_dir": str(self.sim_dir), "num_threads": 1}
        return run_bundle(PRETRAIN_CONFIGS / "evaluate.json", "infer", **{**overrides, **extra})

    def test_cohesion_of_checkpoint_and_random_init(self):
        torch.manual_seed(0)
        model = AFiRe(AFiReEncoder(mlp_dim=64, **ENCODER), **AFIRE)
        ckpt_dir = self.tmp / "bundle" / "models"
        ckpt_dir.mkdir(parents=True)
        torch.save({"model": model.state_dict()}, ckpt_dir / "afire_checkpoint_4.pt")

        workflow = self._run(self.tmp / "bundle")  # checkpoint: the newest in models/
        out = self.tmp / "bundle" / "eval" / "cohesion"
        row = _table_row(out / "cohesion.md")
        self.assertIn("afire_checkpoint_4.pt", (out / "cohesion.md").read_text())
        self.assertTrue(-1.0 <= float(row["silhouette"]) <= 1.0)
        self.assertTrue(0.0 <= float(row["knn_accuracy"]) <= 1.0)
        self.assertGreaterEqual(int(row["anatomy labels"]), 2)
        self.assertGreater((out / "cohesion_tsne.png").stat().st_size, 0)
        report = workflow.parser.get_parsed_content("handlers")[0]
        self.assertEqual(report.result["num_tokens"], int(row["tokens"]))
        # at most 16 tokens per normal film (background tokens are left out), from every film of the set
        self.assertTrue(0 < report.result["num_tokens"] <= 16 * len(report.groups))
        self.assertEqual(len(report.groups), len(workflow.parser.get_parsed_content("dataset")))

        self._run(self.tmp / "random", checkpoint=None)
        self.assertIn("random init", (self.tmp / "random" / "eval" / "cohesion" / "cohesion.md").read_text())

    def test_checkpoint_of_another_size_is_refused(self):
        other = AFiRe(AFiReEncoder(mlp_dim=64, **{**ENCODER, "hidden_size": 48}), **AFIRE)
        path = self.tmp / "other.pt"
        torch.save({"model": other.state_dict()}, path)
        with self.assertRaises((ValueError, RuntimeError)) as err:
            self._run(self.tmp / "bundle", checkpoint=str(path))
        self.assertIn("not an encoder of the configured size", error_messages(err.exception))


if __name__ == "__main__":
    unittest.main()
