"""Localisation cases, mask geometry and scoring of maps through run_localization."""

from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized
from PIL import Image

from monai_afire.apps import load_afire_model, localization_cases, run_localization
from monai_afire.apps.localization import prepared_mask
from monai_afire.metrics.localization import resized_boxes
from monai_afire.networks import AFiRe, AFiReClassifier, AFiReEncoder
from tests.tiny import TmpDirTestCase


def _film(tmp_path, size=32):
    rng = np.random.default_rng(0)
    image = (rng.random((size, size)) * 60).astype(np.uint8)
    image[4:12, 18:28] = 250  # a bright "finding" in rows 4-12, columns 18-28
    Image.fromarray(image).save(tmp_path / "film.png")
    mask = np.zeros((size, size), np.uint8)
    mask[4:12, 18:28] = 255
    Image.fromarray(mask).save(tmp_path / "masks_film_Mass.png")
    return {"image": str(tmp_path / "film.png"), "boxes": [[18, 4, 28, 12]], "box_labels": ["Mass"]}


class TestLocalization(TmpDirTestCase):
    def test_cases_group_boxes_per_finding_and_find_masks(self):
        (self.tmp / "a_Nodule.png").write_bytes(b"")
        records = [
            {"image": "/x/a.png", "boxes": [[0, 0, 2, 2], [3, 3, 5, 5], [1, 1, 4, 4]],
             "box_labels": ["Nodule", "Nodule", "Hernia"]},
            {"image": "/x/b.png", "boxes": [], "box_labels": []},
        ]  # fmt: skip
        cases = localization_cases(records, ["Mass", "Nodule"], mask_dir=self.tmp)
        self.assertEqual(len(cases), 1)
        self.assertEqual((cases[0]["finding"], cases[0]["class_index"], len(cases[0]["boxes"])), ("Nodule", 1, 2))
        self.assertEqual(cases[0]["mask"], str(self.tmp / "a_Nodule.png"))

    def test_prepared_mask_follows_box_geometry(self):
        mask = np.zeros((40, 80), np.uint8)
        mask[8:16, 60:72] = 255
        Image.fromarray(mask).save(self.tmp / "m.png")
        out = prepared_mask(self.tmp / "m.png", 32)
        rows, cols = np.nonzero(out)
        box = resized_boxes([[60, 8, 72, 16]], (80, 40), 32)[0]
        np.testing.assert_allclose([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], box, atol=1)

    def test_run_localization_writes_tables_and_figures(self):
        record = _film(self.tmp)
        (self.tmp / "masks").mkdir()
        (self.tmp / "masks_film_Mass.png").rename(self.tmp / "masks" / "film_Mass.png")
        model = AFiReClassifier(
            AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2), 1
        )
        scores = run_localization(
            [record], ["Mass"], 32, self.tmp / "out", classifier=model, mask_dir=self.tmp / "masks"
        )
        row = scores["gradcam"]["all"]
        self.assertEqual(row["cases"], 1)
        self.assertTrue(0.0 <= row["pixel_auroc"] <= 1.0)
        self.assertIn(row["pointing_game"], (0.0, 1.0))
        self.assertEqual((self.tmp / "out" / "localization_gradcam.md").read_text().count("Mass"), 1)
        self.assertGreater((self.tmp / "out" / "localization_gradcam.png").stat().st_size, 0)

    def test_run_localization_needs_a_model_and_boxes(self):
        with self.assertRaisesRegex(ValueError, "give a classifier"):
            run_localization([], ["Mass"], 32, self.tmp)
        model = AFiReClassifier(AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1,
                                             num_heads=2), 1)  # fmt: skip
        with self.assertRaisesRegex(ValueError, "no record has boxes"):
            run_localization([{"image": "x.png", "boxes": [], "box_labels": []}], ["Mass"], 32, self.tmp, model)

    def test_box_outside_the_image_is_reported_with_the_file(self):
        record = _film(self.tmp)
        record["boxes"] = [[18, 4, 60, 12]]
        model = AFiReClassifier(AFiReEncoder("vit_tiny", img_size=32, patch_size=8, hidden_size=16, num_layers=1,
                                             num_heads=2), 1)  # fmt: skip
        with self.assertRaisesRegex(ValueError, "film.png"):
            run_localization([record], ["Mass"], 32, self.tmp / "out", classifier=model)


    @parameterized.expand([(False,), (True,)])
    def test_afire_maps_follow_the_recipe(self, lesion_prototype):
        """The authors' recipe (no lesion prototype) gives only the residual; the afire_plus model both maps."""
        record = _film(self.tmp)
        encoder = {"arch": "vit_tiny", "img_size": 32, "patch_size": 8, "hidden_size": 16, "num_layers": 1,
                   "num_heads": 2}  # fmt: skip
        sizes = {"num_prototypes": 4, "head_hidden_dim": 8, "head_bottleneck_dim": 8, "decoder_dim": 16,
                 "decoder_depth": 1, "decoder_heads": 2}  # fmt: skip
        torch.manual_seed(0)
        trained = AFiRe(AFiReEncoder(**encoder), lesion_prototype=lesion_prototype, **sizes)
        torch.save({"model": trained.state_dict()}, self.tmp / "afire_checkpoint_1.pt")
        model = load_afire_model(self.tmp / "afire_checkpoint_1.pt", encoder, **sizes)  # detects the lesion prototype
        self.assertEqual(model.has_lesion_prototype, lesion_prototype)
        scores = run_localization([record], ["Mass"], 32, self.tmp / "out", afire_model=model)
        self.assertEqual(set(scores), {"lesion_probability", "residual"} if lesion_prototype else {"residual"})
        self.assertEqual((self.tmp / "out" / "localization_lesion_probability.md").exists(), lesion_prototype)


if __name__ == "__main__":
    unittest.main()
