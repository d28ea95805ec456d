"""Cohesion records/transforms on a tiny folder, strict encoder loading."""

from __future__ import annotations

import json
import unittest

import numpy as np
import torch
from PIL import Image

from monai_afire.apps import cohesion_records, cohesion_transforms, load_encoder
from monai_afire.networks import AFiReEncoder
from tests.tiny import TmpDirTestCase


class TestCohesion(TmpDirTestCase):
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
