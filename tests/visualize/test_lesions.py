import unittest

import matplotlib.image as mpimg
import numpy as np
import torch
from parameterized import parameterized

from monai_afire.transforms import RandSyntheticLesiond
from monai_afire.visualize import lesion_gallery
from tests.tiny import TmpDirTestCase


def lesioned_rows(count, shape=(1, 32, 32)):
    rng = np.random.default_rng(0)
    transform = RandSyntheticLesiond().set_random_state(0)
    return [transform({"image": rng.random(shape).astype(np.float32)}) for _ in range(count)]


class TestLesionGallery(TmpDirTestCase):
    @parameterized.expand([(1, (1, 32, 32)), (3, (1, 24, 40)), (2, (1, 16, 16, 8))])
    def test_writes_png_with_one_row_per_sample(self, count, shape):
        rows = lesioned_rows(count, shape)
        path = lesion_gallery(
            [r["clean"] for r in rows],
            [r["lesion_mask"] for r in rows],
            [r["image"] for r in rows],
            self.tmp / "sub" / "gallery.png",
            titles=[f"row {i}" for i in range(count)],
        )
        self.assertEqual(path, self.tmp / "sub" / "gallery.png")
        picture = mpimg.imread(path)
        self.assertEqual(picture.ndim, 3)
        height, width = picture.shape[:2]
        self.assertAlmostEqual(height / width, 2.6 * count / 7.5, delta=0.05)
        self.assertGreater(float(picture[..., :3].std()), 0.05)

    def test_batch_tensors_and_transpose(self):
        images = torch.rand(2, 1, 20, 30)
        path = lesion_gallery(images, torch.zeros_like(images), images, self.tmp / "g.png", transpose=True)
        self.assertTrue(path.is_file())

    def test_every_panel_shows_the_film(self):
        """No bare mask panel: each panel's first image is a grey film; the mask lies over the third, transparent
        where nothing was added, with its outline."""
        from monai_afire.visualize.lesions import _gallery_figure

        rows = lesioned_rows(2)
        fig = _gallery_figure(
            [r["clean"] for r in rows], [r["lesion_mask"] for r in rows], [r["image"] for r in rows], None, False
        )
        axes = fig.axes[:6]  # the colour bars come after the panels
        for ax in axes:
            self.assertEqual(ax.images[0].get_cmap().name, "gray")
        for ax in axes[2::3]:
            overlay = ax.images[1].get_array()
            mask = np.asarray(rows[axes.index(ax) // 3]["lesion_mask"][0])
            self.assertTrue(np.ma.is_masked(overlay))
            np.testing.assert_array_equal(np.ma.getmaskarray(overlay), mask <= 0)
            self.assertTrue(ax.collections, "no lesion outline")  # the contour

    def test_bad_input(self):
        image = np.zeros((1, 8, 8))
        with self.assertRaisesRegex(ValueError, "equally long"):
            lesion_gallery([image], [image, image], [image], self.tmp / "g.png")
        with self.assertRaisesRegex(ValueError, "equally long"):
            lesion_gallery([], [], [], self.tmp / "g.png")
        with self.assertRaisesRegex(ValueError, "titles"):
            lesion_gallery([image], [image], [image], self.tmp / "g.png", titles=["a", "b"])
        with self.assertRaisesRegex(ValueError, "must have one shape"):
            lesion_gallery([image], [np.zeros((1, 4, 4))], [image], self.tmp / "g.png")
        with self.assertRaisesRegex(ValueError, r"masks\[0\]"):
            lesion_gallery([image], [np.zeros(8)], [image], self.tmp / "g.png")
        self.assertFalse((self.tmp / "g.png").exists())


if __name__ == "__main__":
    unittest.main()
