"""CohesionReport on hand-made tokens."""

from __future__ import annotations

import unittest

import torch
from ignite.engine import Engine

from monai_afire.handlers import CohesionReport
from tests.tiny import TmpDirTestCase


def _anatomy(seed: int) -> torch.Tensor:
    """A (1, 16, 16) label map of 4 x 4 patches: left half label 1, right half label 2 (patch size 4)."""
    amap = torch.ones(1, 16, 16, dtype=torch.long)
    amap[:, 8:] = 2
    return amap


class TestCohesionReport(TmpDirTestCase):
    def test_identical_tokens_per_anatomy_give_cohesion_one(self):
        prototypes = torch.eye(8)[:3]  # token embedding = one-hot of its anatomy label

        def step(engine, batch):
            out = []
            for amap in batch["anatomy"]:
                labels = amap[0].reshape(4, 4, 4, 4).permute(0, 2, 1, 3).reshape(16, 16)[:, 0]
                out.append({"pred": prototypes[labels] + 0.01 * torch.randn(16, 8)})
            return out

        batches = [{"anatomy": torch.stack([_anatomy(i) for i in range(3)])} for _ in range(3)]
        engine = Engine(step)
        report = CohesionReport(self.tmp, patch_size=4, label_names={1: "left", 2: "right"}, num_threads=1)
        report.attach(engine)
        torch.manual_seed(0)
        engine.run(batches)
        self.assertGreater(report.result["silhouette"], 0.95)
        self.assertAlmostEqual(report.result["nmi"], 1.0)
        self.assertAlmostEqual(report.result["knn_accuracy"], 1.0)
        self.assertIn("| 144 | 2 |", (self.tmp / "cohesion.md").read_text())
        self.assertGreater((self.tmp / "cohesion_tsne.png").stat().st_size, 0)

    def test_token_count_mismatch_is_reported(self):
        engine = Engine(lambda e, b: [{"pred": torch.zeros(5, 8)}])
        CohesionReport(self.tmp, patch_size=4).attach(engine)
        with self.assertRaisesRegex(ValueError, "do not match 16 anatomy patches"):
            engine.run([{"anatomy": _anatomy(0)[None]}])


if __name__ == "__main__":
    unittest.main()
