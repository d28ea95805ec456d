import tempfile
import unittest
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import torch
from parameterized import parameterized

from monai_afire.transforms import RandSyntheticLesiond
from monai_afire.visualize import lesion_gallery


def lesioned_rows(count, shape=(1, 32, 32)):
    rng = np.random.default_rng(0)
    transform = RandSyntheticLesiond().set_random_state(0)
    return [transform({"image": rng.random(shape).astype(np.float32)}) for _ in range(count)]


class TestLesionGallery(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory()
        self.dir = Path(self._dir.name)

    def tearDown(self):
        self._dir.cleanup()

    @parameterized.expand([(1, (1, 32, 32)), (3, (1, 24, 40)), (2, (1, 16, 16, 8))])
    def test_writes_png_with_one_row_per_sample(self, count, shape):
        rows = lesioned_rows(count, shape)
        path = lesion_gallery(
            [r["clean"] for r in rows],
            [r["lesion_mask"] for r in rows],
            [r["image"] for r in rows],
            self.dir / "sub" / "gallery.png",
            titles=[f"row {i}" for i in range(count)],
        )
        self.assertEqual(path, self.dir / "sub" / "gallery.png")
        picture = mpimg.imread(path)
        self.assertEqual(picture.ndim, 3)
        height, width = picture.shape[:2]
        self.assertAlmostEqual(height / width, 2.6 * count / 7.5, delta=0.05)
        self.assertGreater(float(picture[..., :3].std()), 0.05)

    def test_batch_tensors_and_transpose(self):
        images = torch.rand(2, 1, 20, 30)
        path = lesion_gallery(images, torch.zeros_like(images), images, self.dir / "g.png", transpose=True)
        self.assertTrue(path.is_file())

    def test_bad_input(self):
        image = np.zeros((1, 8, 8))
        with self.assertRaisesRegex(ValueError, "equally long"):
            lesion_gallery([image], [image, image], [image], self.dir / "g.png")
        with self.assertRaisesRegex(ValueError, "equally long"):
            lesion_gallery([], [], [], self.dir / "g.png")
        with self.assertRaisesRegex(ValueError, "titles"):
            lesion_gallery([image], [image], [image], self.dir / "g.png", titles=["a", "b"])
        with self.assertRaisesRegex(ValueError, r"masks\[0\]"):
            lesion_gallery([image], [np.zeros(8)], [image], self.dir / "g.png")
        self.assertFalse((self.dir / "g.png").exists())


if __name__ == "__main__":
    unittest.main()
