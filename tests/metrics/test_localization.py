from __future__ import annotations

import math
import os
import tempfile
import unittest

import numpy as np
import torch
from parameterized import parameterized
from PIL import Image
from sklearn.metrics import roc_auc_score

from monai_afire.metrics import (
    bootstrap_mean_difference,
    box_from_map,
    box_hits,
    check_boxes,
    localization_case_scores,
    localization_markdown,
    localization_scores,
    localization_summary,
    pixel_auroc,
    pointing_game,
    resized_boxes,
    write_localization_markdown,
)
from monai_afire.transforms import radiograph_transforms

BOX = [8, 4, 20, 12]  # x0, y0, x1, y1 on a 32 x 24 (W x H) image


def _perfect_map():
    m = np.zeros((24, 32))
    m[4:12, 8:20] = 1.0
    return m


class TestLocalization(unittest.TestCase):
    def test_perfect_map(self):
        m = _perfect_map()
        self.assertTrue(pointing_game(m, [BOX]))
        np.testing.assert_array_equal(box_from_map(m), BOX)
        self.assertEqual(box_hits(m, [BOX]), {0.1: True, 0.3: True, 0.5: True})
        self.assertEqual(pixel_auroc(m, m > 0), 1.0)

    def test_missed_map(self):
        m = np.zeros((24, 32))
        m[18:22, 26:30] = 1.0
        self.assertFalse(pointing_game(m, [BOX]))
        self.assertEqual(box_hits(m, [BOX]), {0.1: False, 0.3: False, 0.5: False})
        self.assertEqual(pixel_auroc(m, _perfect_map()), roc_auc_score(_perfect_map().ravel() > 0, m.ravel()))

    def test_partial_overlap_iou_levels(self):
        m = np.zeros((24, 32))
        m[4:12, 14:26] = 1.0  # same size, shifted half a box: IoU = 48 / 144 = 1/3
        self.assertEqual(box_hits(m, [BOX]), {0.1: True, 0.3: True, 0.5: False})

    def test_largest_region_and_threshold(self):
        m = np.zeros((24, 32))
        m[0:2, 0:2] = 1.0  # small, hottest
        m[10:20, 10:30] = 0.8  # large
        np.testing.assert_array_equal(box_from_map(m, threshold=0.5), [10, 10, 30, 20])
        np.testing.assert_array_equal(box_from_map(m, threshold=0.9), [0, 0, 2, 2])
        self.assertIsNone(box_from_map(np.ones((4, 4))))
        self.assertEqual(box_hits(np.ones((24, 32)), [BOX])[0.1], False)

    def test_pointing_game_any_box_and_tensor(self):
        m = torch.zeros(1, 24, 32)
        m[0, 20, 30] = 5.0
        self.assertTrue(pointing_game(m, [BOX, [28, 18, 32, 24]]))

    def test_pixel_auroc_undefined(self):
        self.assertTrue(math.isnan(pixel_auroc(np.random.rand(4, 4), np.zeros((4, 4)))))
        with self.assertRaisesRegex(ValueError, "shape"):
            pixel_auroc(np.random.rand(4, 4), np.zeros((5, 4)))

    @parameterized.expand(
        [
            ("right", [8, 4, 33, 12]),
            ("bottom", [8, 4, 20, 25]),
            ("negative", [-1, 4, 20, 12]),
            ("inverted", [20, 4, 8, 12]),
            ("empty", [8, 4, 8, 12]),
        ]
    )
    def test_bad_boxes(self, _, box):
        with self.assertRaisesRegex(ValueError, "img7.png"):
            check_boxes([box], (24, 32), name="img7.png")
        with self.assertRaises(ValueError):
            pointing_game(_perfect_map(), [box])

    def test_scores_per_finding_and_table(self):
        hit, miss = _perfect_map(), np.flipud(_perfect_map()).copy()
        scores = localization_scores(
            [hit, miss, hit],
            [[BOX], [BOX], [BOX]],
            ["Nodule", "Nodule", "Mass"],
            masks=[hit > 0, None, hit > 0],
        )
        self.assertEqual(list(scores), ["Mass", "Nodule", "all"])
        self.assertEqual(scores["Mass"]["pointing_game"], 1.0)
        self.assertEqual(scores["Nodule"]["pointing_game"], 0.5)
        self.assertEqual(scores["Nodule"]["hit@0.5"], 0.5)
        self.assertAlmostEqual(scores["all"]["hit@0.1"], 2 / 3)
        self.assertEqual(scores["all"]["cases"], 3)
        self.assertEqual(scores["Nodule"]["pixel_auroc"], 1.0)  # the case without mask is left out
        with tempfile.TemporaryDirectory() as tmp:
            text = write_localization_markdown(scores, os.path.join(tmp, "loc.md"))
            self.assertTrue(os.path.isfile(os.path.join(tmp, "loc.md")))
        self.assertIn("| Nodule | 2 | 0.500 |", text)
        self.assertIn("hit@0.3", localization_markdown(scores))

    def test_scores_bad_input(self):
        with self.assertRaisesRegex(ValueError, "must match"):
            localization_scores([_perfect_map()], [[BOX], [BOX]], ["a"])
        with self.assertRaisesRegex(ValueError, "scan1.dcm"):
            localization_scores([_perfect_map()], [[[0, 0, 40, 10]]], ["a"], names=["scan1.dcm"])
        with self.assertRaisesRegex(ValueError, "no ground-truth box"):
            localization_scores([_perfect_map()], [[]], ["a"])


class TestLayoutAndResizing(unittest.TestCase):
    def test_xy_layout_is_transpose(self):
        m = _perfect_map()
        self.assertTrue(pointing_game(m.T, [BOX], layout="xy"))
        np.testing.assert_array_equal(box_from_map(torch.as_tensor(m.T), layout="xy"), BOX)
        self.assertEqual(box_hits(m.T, [BOX], layout="xy")[0.5], True)
        scores = localization_scores([m.T], [[BOX]], ["a"], masks=[m.T > 0], layout="xy")
        self.assertEqual((scores["a"]["pointing_game"], scores["a"]["pixel_auroc"]), (1.0, 1.0))
        with self.assertRaisesRegex(ValueError, "layout"):
            box_from_map(m, layout="zx")

    def test_resized_boxes_known_answer(self):
        # 200 x 100 film to 20 x 20: scale 0.1, height 10 padded by 5 above
        np.testing.assert_allclose(
            resized_boxes([[0, 0, 200, 100], [50, 20, 100, 60]], (200, 100), 20), [[0, 5, 20, 15], [5, 7, 10, 11]]
        )
        with self.assertRaisesRegex(ValueError, "outside"):
            resized_boxes([[0, 0, 201, 10]], (200, 100), 20)

    def test_resized_boxes_follow_radiograph_transforms(self):
        film = np.full((20, 40), 30, dtype=np.uint8)  # height 20, width 40
        film[4:12, 8:16] = 220  # box [8, 4, 16, 12]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "film.png")
            Image.fromarray(film).save(path)
            image = radiograph_transforms(image_size=20)({"image": path})["image"]
        box = resized_boxes([[8, 4, 16, 12]], image.meta["spatial_shape"], 20)[0]
        image = image[0]
        np.testing.assert_allclose(box, [4, 7, 8, 11])
        np.testing.assert_array_equal(box_from_map(image, layout="xy"), box)


class TestCaseScoresAndPairedBootstrap(unittest.TestCase):
    def test_case_rows_average_to_the_table(self):
        perfect, missed = _perfect_map(), np.zeros((24, 32))
        missed[20, 30] = 1.0  # maximum outside the box, below it
        maps, boxes, findings = [perfect, missed, perfect], [[BOX]] * 3, ["a", "a", "b"]
        masks = [perfect > 0, perfect > 0, None]
        rows = localization_case_scores(maps, boxes, findings, masks)
        self.assertEqual([r["pointing_game"] for r in rows], [1.0, 0.0, 1.0])
        self.assertEqual(rows[0]["pixel_auroc"], 1.0)
        self.assertTrue(math.isnan(rows[2]["pixel_auroc"]))
        table = localization_scores(maps, boxes, findings, masks)
        self.assertEqual(localization_summary(rows, findings), table)
        self.assertEqual(table["a"]["pointing_game"], 0.5)
        self.assertEqual(table["all"]["pixel_auroc"], np.mean([rows[0]["pixel_auroc"], rows[1]["pixel_auroc"]]))
        with self.assertRaisesRegex(ValueError, "must match"):
            localization_summary(rows, findings[:2])

    def test_bootstrap_exact_on_constructed_values(self):
        a = np.array([0.9, 0.8, 0.7, 0.6])
        same = bootstrap_mean_difference(a, a, num_samples=50)
        self.assertEqual(tuple(same), (0.0, 0.0, 0.0))
        shifted = bootstrap_mean_difference(a, a - 0.25, groups=["p1", "p1", "p2", "p3"], num_samples=50)
        np.testing.assert_allclose(tuple(shifted), (0.25, 0.25, 0.25))
        self.assertEqual((shifted.num_groups, shifted.num_replicates), (3, 50))

    def test_bootstrap_resamples_whole_patients(self):
        # patient 1 has three cases with difference 1, patient 2 one case with difference 0
        a, b, groups = [1.0, 1.0, 1.0, 0.0], [0.0] * 4, [1, 1, 1, 2]
        diff = bootstrap_mean_difference(a, b, groups=groups, num_samples=400)
        self.assertAlmostEqual(diff.point, 0.75)
        # replicates {1, 1} -> 1, {1, 2} -> 3/4, {2, 2} -> 0 (a quarter of them): the 2.5% quantile is 0
        self.assertEqual((diff.low, diff.high), (0.0, 1.0))
        # resampling the cases instead, all four draws are the zero case in 0.4% of replicates only
        self.assertGreaterEqual(bootstrap_mean_difference(a, b, num_samples=400).low, 0.25)

    def test_bootstrap_leaves_out_undefined_cases_and_checks_input(self):
        diff = bootstrap_mean_difference([0.5, math.nan, 0.9], [0.5, 0.1, 0.4], num_samples=20)
        self.assertAlmostEqual(diff.point, 0.25)
        self.assertEqual(diff.num_groups, 2)
        self.assertTrue(math.isnan(bootstrap_mean_difference([math.nan], [0.1]).point))
        with self.assertRaisesRegex(ValueError, "must be 1-D"):
            bootstrap_mean_difference([0.1, 0.2], [0.1])
        with self.assertRaisesRegex(ValueError, "groups"):
            bootstrap_mean_difference([0.1, 0.2], [0.1, 0.3], groups=[1])
        with self.assertRaisesRegex(ValueError, "num_samples"):
            bootstrap_mean_difference([0.1], [0.1], num_samples=0)


if __name__ == "__main__":
    unittest.main()
