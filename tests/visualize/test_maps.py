from __future__ import annotations

import os
import tempfile
import unittest

import numpy as np
import torch
from matplotlib.patches import Rectangle

from monai_afire.visualize import plot_map_overlay, plot_token_embedding, save_map_gallery


def _case():
    image = np.random.default_rng(0).random((24, 32))
    heatmap = np.zeros((24, 32))
    heatmap[4:12, 8:20] = 1.0
    return image, heatmap


class TestMapOverlay(unittest.TestCase):
    def test_boxes_drawn(self):
        image, heatmap = _case()
        ax = plot_map_overlay(torch.as_tensor(image)[None], heatmap, [[2, 2, 6, 6]], title="Nodule")
        rects = [p for p in ax.patches if isinstance(p, Rectangle)]
        self.assertEqual(len(rects), 2)
        self.assertEqual((rects[0].get_width(), rects[0].get_height()), (4, 4))  # ground truth
        self.assertEqual((rects[1].get_width(), rects[1].get_height()), (12, 8))  # thresholded map
        self.assertEqual(ax.get_title(), "Nodule")
        transposed = plot_map_overlay(image.T, heatmap.T, [[2, 2, 6, 6]], layout="xy")
        self.assertEqual(transposed.patches[1].get_width(), 12)
        no_pred = plot_map_overlay(image, heatmap, map_threshold=None)
        self.assertEqual(len(no_pred.patches), 0)

    def test_bad_input(self):
        image, heatmap = _case()
        with self.assertRaisesRegex(ValueError, "outside the image"):
            plot_map_overlay(image, heatmap, [[0, 0, 40, 10]])
        with self.assertRaisesRegex(ValueError, "same shape"):
            plot_map_overlay(image, heatmap[:10])

    def test_gallery_file(self):
        image, heatmap = _case()
        with tempfile.TemporaryDirectory() as tmp:
            path = save_map_gallery(
                os.path.join(tmp, "figs", "maps.png"), [image] * 3, [heatmap] * 3, [[[8, 4, 20, 12]]] * 3, columns=2
            )
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with self.assertRaises(ValueError):
            save_map_gallery("unused.png", [image], [])


class TestEmbeddingPlot(unittest.TestCase):
    def test_scatter_per_label(self):
        xy = np.random.default_rng(0).random((30, 2))
        labels = np.arange(30) % 3
        ax = plot_token_embedding(xy, labels, {0: "background", 1: "lung"})
        self.assertEqual(len(ax.collections), 3)
        self.assertEqual([t.get_text() for t in ax.get_legend().get_texts()], ["background", "lung", "2"])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "tsne.png")
            plot_token_embedding(xy, labels, path=path)
            self.assertGreater(os.path.getsize(path), 0)
        with self.assertRaises(ValueError):
            plot_token_embedding(xy, labels[:5])


if __name__ == "__main__":
    unittest.main()
