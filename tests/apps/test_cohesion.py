"""CohesionReport on hand-made tokens, cohesion records/transforms on a tiny folder, strict encoder loading."""

from __future__ import annotations

import json
import unittest

import numpy as np
import torch
from ignite.engine import Engine
from PIL import Image

from monai_afire.apps import cohesion_records, cohesion_transforms, load_encoder
from monai_afire.handlers import CohesionReport
from monai_afire.networks import AFiReEncoder
from tests.tiny import TmpDirTestCase


def _anatomy(seed: int) -> torch.Tensor:
    """A (1, 16, 16) label map of 4 x 4 patches: left half label 1, right half label 2 (patch size 4)."""
    amap = torch.ones(1, 16, 16, dtype=torch.long)
    amap[:, 8:] = 2
    return amap


class TestCohesion(TmpDirTestCase):
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

    def test_records_and_transforms_keep_image_and_anatomy_aligned(self):
        (self.tmp / "images").mkdir()
        (self.tmp / "anatomy").mkdir()
        header = "Image Index,Finding Labels,Follow-up #,Patient ID\n"
        rows = ["a.png,No Finding,0,1", "b.png,Nodule,0,2"]
        (self.tmp / "Data_Entry_2017.csv").write_text(header + "\n".join(rows) + "\n")
        image = np.zeros((20, 40), np.uint8)
        image[:, 30:] = 200
        anatomy = np.zeros((20, 40), np.uint8)
        anatomy[:, 30:] = 3
        for name in ("a.png", "b.png"):
            Image.fromarray(image).save(self.tmp / "images" / name)
            Image.fromarray(anatomy).save(self.tmp / "anatomy" / name)
        records = cohesion_records(self.tmp)
        self.assertEqual([r["image"].endswith("a.png") for r in records], [True])  # only the normal film
        out = cohesion_transforms(16)(records[0])
        self.assertEqual(tuple(out["image"].shape), (1, 16, 16))
        self.assertEqual(tuple(out["anatomy"].shape), (1, 16, 16))
        bright = out["image"][0] > 0.5
        self.assertTrue(torch.equal(bright, out["anatomy"][0] == 3))
        self.assertLessEqual(set(torch.unique(out["anatomy"]).tolist()), {0, 3})
        (self.tmp / "Data_Entry_2017.csv").write_text(header + rows[1] + "\n")
        with self.assertRaisesRegex(ValueError, "no normal image"):
            cohesion_records(self.tmp)

    def test_load_encoder_is_strict_about_size(self):
        kwargs = {"arch": "vit_tiny", "img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 1,
                  "num_heads": 2}  # fmt: skip
        source = AFiReEncoder(**kwargs)
        torch.save(source.state_dict(), self.tmp / "enc.pt")
        loaded = load_encoder(str(self.tmp / "enc.pt"), **kwargs)
        for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
            self.assertTrue(torch.equal(a, b), name)
        with self.assertRaisesRegex(ValueError, "not an encoder of the configured size"):
            load_encoder(str(self.tmp / "enc.pt"), **{**kwargs, "hidden_size": 32})
        self.assertEqual(json.loads(json.dumps(load_encoder(None, **kwargs).config))["hidden_size"], 16)


if __name__ == "__main__":
    unittest.main()
