"""The anomaly-map figure: files written, token AUROCs in the titles equal a recomputation, map kinds, bad input."""

from __future__ import annotations

import re
import unittest

import matplotlib.image as mpimg
import numpy as np
import torch
from parameterized import parameterized
from sklearn.metrics import roc_auc_score

from monai_afire.inferers import token_outputs
from monai_afire.transforms import RandSyntheticLesiond
from monai_afire.visualize import plot_anomaly_cases, token_auroc, write_anomaly_figure
from tests.tiny import TmpDirTestCase, tiny_model

SIZE, PATCH = 32, 8
GRID = (SIZE // PATCH, SIZE // PATCH)


def reference_labels(mask: np.ndarray) -> np.ndarray:
    """Abnormal tokens computed here, independently: mean of the mask over each 8 x 8 patch > 0."""
    return mask.reshape(GRID[0], PATCH, GRID[1], PATCH).mean(axis=(1, 3)) > 0


def titled_aurocs(titles: list[str]) -> list[float | None]:
    """The token AUROC written in each title (None for "undefined")."""
    values = []
    for title in titles:
        found = re.search(r"token AUROC (undefined|[0-9.]+)", title)
        assert found, title
        values.append(None if found.group(1) == "undefined" else float(found.group(1)))
    return values


def cases(count: int = 2, seed: int = 0):
    """A clean film, its token map, and ``count`` lesioned films with masks and maps (random maps)."""
    rng = np.random.default_rng(seed)
    clean = rng.random((SIZE, SIZE))
    films, masks, maps = [], [], []
    for i in range(count):
        mask = np.zeros((SIZE, SIZE))
        mask[4 + 4 * i : 14 + 4 * i, 6:20] = 0.3
        films.append(clean + mask)
        masks.append(mask)
        maps.append(rng.random(GRID))
    return clean, rng.random(GRID), films, maps, masks


class TestTokenAUROC(unittest.TestCase):
    def test_equals_sklearn(self):
        rng = np.random.default_rng(1)
        scores, labels = rng.random((4, 4)), rng.random((4, 4)) > 0.6
        self.assertAlmostEqual(token_auroc(scores, labels), roc_auc_score(labels.ravel(), scores.ravel()))
        self.assertEqual(token_auroc(torch.tensor([0.1, 0.9]), torch.tensor([False, True])), 1.0)

    def test_undefined_and_mismatch(self):
        self.assertIsNone(token_auroc(np.ones(4), np.zeros(4, bool)))
        self.assertIsNone(token_auroc(np.ones(4), np.ones(4, bool)))
        with self.assertRaisesRegex(ValueError, "3 token values for 4 token labels"):
            token_auroc(np.ones(3), np.ones(4, bool))


class TestPlotAnomalyCases(TmpDirTestCase):
    @parameterized.expand(
        [("lesion_probability", "lesion-prototype probability"), ("restoration_residual", "residual")]
    )
    def test_writes_figure_with_recomputed_aurocs(self, kind, shown_name):
        clean, clean_map, films, maps, masks = cases(3)
        result = plot_anomaly_cases(
            self.tmp / "sub" / "maps.png", clean, clean_map, films, maps, masks, kind, titles=["a", "b", "c"]
        )
        picture = mpimg.imread(result.path)
        self.assertEqual(picture.ndim, 3)
        self.assertGreater(float(picture[..., :3].std()), 0.05)
        self.assertEqual(result.map_kind, kind)
        self.assertEqual(len(result.titles), 4)  # the clean row and one row per case
        self.assertIn(shown_name, result.titles[0][1])
        for i, row in enumerate(result.titles[1:]):
            labels = reference_labels(masks[i])
            expected_map = roc_auc_score(labels.ravel(), maps[i].ravel())
            expected_diff = roc_auc_score(labels.ravel(), (maps[i] - clean_map).ravel())
            shown_map, shown_diff = titled_aurocs(row[1:])
            self.assertAlmostEqual(shown_map, expected_map, places=3)
            self.assertAlmostEqual(shown_diff, expected_diff, places=3)
            self.assertAlmostEqual(result.map_auroc[i], expected_map)
            self.assertAlmostEqual(result.difference_auroc[i], expected_diff)
            self.assertEqual(result.abnormal_tokens[i], int(labels.sum()))
            self.assertIn(f"{int(labels.sum())} of 16 tokens abnormal", row[0])
            self.assertIn(shown_name, row[1])
            self.assertIn("lesioned - clean", row[2])

    def test_difference_removes_what_the_clean_film_shows(self):
        """A map that is the film's own structure plus a small lesion response: the raw map ranks the lesion tokens
        poorly, the lesioned-minus-clean map perfectly."""
        clean, _, films, _, masks = cases(1)
        structure = np.linspace(0, 1, 16).reshape(GRID)  # low where the lesion is (the first rows of tokens)
        lesion_map = structure + 0.05 * reference_labels(masks[0])
        result = plot_anomaly_cases(self.tmp / "m.png", clean, structure, films, [lesion_map], masks, "residual")
        self.assertLess(result.map_auroc[0], 0.7)
        self.assertEqual(result.difference_auroc[0], 1.0)

    def test_layout_xy_and_undefined_auroc(self):
        clean, clean_map, films, maps, masks = cases(1)
        empty = np.zeros_like(masks[0])
        result = plot_anomaly_cases(
            self.tmp / "m.png", clean[None], clean_map, [films[0][None]], [maps[0]], [empty], "residual", layout="xy"
        )
        self.assertIsNone(result.map_auroc[0])
        self.assertEqual(titled_aurocs(result.titles[1][1:]), [None, None])

    @parameterized.expand(
        [
            ("kind", {"map_kind": "saliency"}, "map_kind must be one of"),
            ("layout", {"layout": "zz"}, "layout must be"),
            ("titles", {"titles": ["only one"]}, "1 titles for 2 cases"),
            ("lengths", {"lesion_masks": "one"}, "equally long"),
            ("grid", {"clean_map": np.zeros((3, 3)), "lesioned_maps": "3x3"}, "whole number of tokens"),
            ("map shape", {"lesioned_maps": "5x5"}, r"map \(5, 5\) and clean map \(4, 4\) differ"),
            ("image shape", {"lesioned_images": "small"}, "must have the clean image's shape"),
            ("nan", {"clean_map": np.full(GRID, np.nan)}, "NaN or infinite"),
            ("3-D", {"clean_image": np.zeros((2, SIZE, SIZE))}, "2-D array"),
        ]
    )
    def test_bad_input(self, _, change, message):
        clean, clean_map, films, maps, masks = cases(2)
        args = {
            "clean_image": clean,
            "clean_map": clean_map,
            "lesioned_images": films,
            "lesioned_maps": maps,
            "lesion_masks": masks,
            "map_kind": "lesion_probability",
        }
        replacements = {
            "one": masks[:1],
            "3x3": [np.zeros((3, 3))] * 2,
            "5x5": [np.zeros((5, 5))] * 2,
            "small": [np.zeros((16, 16))] * 2,
        }
        args.update({k: replacements.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
        if change.get("map_kind") == "saliency":
            args["map_kind"] = "saliency"
        with self.assertRaisesRegex(ValueError, message):
            plot_anomaly_cases(self.tmp / "bad.png", **args)
        self.assertFalse((self.tmp / "bad.png").exists())


class TestWriteAnomalyFigure(TmpDirTestCase):
    @parameterized.expand([(True, "lesion_probability", "lesion-prototype"), (False, "restoration_residual", "resid")])
    def test_tiny_model(self, lesion_prototype, kind, shown_name):
        """Both recipes: with the lesion prototype the map is its probability, without it the restoration residual."""
        model = tiny_model(lesion_prototype=lesion_prototype).eval()
        film = torch.rand(1, SIZE, SIZE) * 0.8
        result = write_anomaly_figure(model, film, self.tmp / "maps.png", seeds=(0, 1), name="film.png")
        self.assertTrue(result.path.is_file())
        self.assertEqual(result.map_kind, kind)
        self.assertIn(shown_name, result.titles[1][1])
        self.assertIn("seed 0", result.titles[1][0])
        self.assertFalse(model.training)
        # recompute: the same lesions, the teacher's token map, the AUROC against the abnormal tokens
        for i, seed in enumerate((0, 1)):
            case = RandSyntheticLesiond(keys="image").set_random_state(seed)({"image": film.clone()})
            with torch.no_grad():
                maps = token_outputs(model, torch.stack([film, case["image"]]), network="teacher")["anomaly"]
            labels = reference_labels(case["lesion_mask"][0].numpy())
            if labels.all() or not labels.any():
                self.assertIsNone(result.map_auroc[i])
                continue
            self.assertAlmostEqual(result.map_auroc[i], roc_auc_score(labels.ravel(), maps[1].numpy().ravel()))
            diff = (maps[1] - maps[0]).numpy().ravel()
            self.assertAlmostEqual(result.difference_auroc[i], roc_auc_score(labels.ravel(), diff))

    def test_bad_input(self):
        model = tiny_model()
        with self.assertRaisesRegex(ValueError, r"prepared film \(1, H, W\)"):
            write_anomaly_figure(model, torch.rand(SIZE, SIZE), self.tmp / "m.png")
        with self.assertRaisesRegex(ValueError, "at least one case"):
            write_anomaly_figure(model, torch.rand(1, SIZE, SIZE), self.tmp / "m.png", seeds=())


if __name__ == "__main__":
    unittest.main()
