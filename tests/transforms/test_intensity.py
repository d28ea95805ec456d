import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRangePercentiles
from parameterized import parameterized

from monai_afire.transforms import ScaleIntensityPercentiles, ScaleIntensityPercentilesd, percentiles


def film(seed: int, shape=(1, 37, 23), levels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 300.0, size=shape)
    if levels is not None:  # many ties, as in 8-bit films
        values = np.round(values / values.max() * (levels - 1))
    return values.astype(np.float32)


class TestPercentiles(unittest.TestCase):
    @parameterized.expand(
        [
            (0, (0.5, 99.5), None),
            (1, (0.0, 100.0), None),
            (2, (1.0, 99.0), 256),
            (3, (25.0, 50.0, 75.0), 7),
            (4, (0.5, 99.5), 2),
        ]
    )
    def test_equal_numpy(self, seed, q, levels):
        values = film(seed, levels=levels)
        np.testing.assert_allclose(percentiles(values, q), np.percentile(values.astype(np.float64), q), rtol=1e-6)
        np.testing.assert_allclose(percentiles(torch.from_numpy(values), q), np.percentile(values, q), rtol=1e-6)

    def test_single_value_and_errors(self):
        self.assertEqual(percentiles(np.array([3.0]), (0, 50, 100)), [3.0, 3.0, 3.0])
        with self.assertRaisesRegex(ValueError, r"\[0, 100\]"):
            percentiles(np.ones(3), (-1, 50))
        with self.assertRaisesRegex(ValueError, "no values"):
            percentiles(np.ones(0), (50,))


class TestScaleIntensityPercentiles(unittest.TestCase):
    @parameterized.expand([(0, 0.5, 99.5, None), (1, 0.0, 100.0, None), (2, 2.0, 98.0, 256), (3, 0.5, 99.5, 3)])
    def test_equal_monai(self, seed, lower, upper, levels):
        image = MetaTensor(torch.from_numpy(film(seed, levels=levels)), meta={"filename_or_obj": "x.png"})
        expected = ScaleIntensityRangePercentiles(lower, upper, b_min=0.0, b_max=1.0, clip=True)(image)
        out = ScaleIntensityPercentiles(lower, upper)(image)
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.dtype, torch.float32)
        self.assertEqual(out.meta["filename_or_obj"], "x.png")
        # torch.quantile (MONAI) interpolates in float32: up to ~1e-5 off numpy.percentile, which we match
        np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=2e-5)
        self.assertAlmostEqual(float(out.min()), 0.0)
        self.assertAlmostEqual(float(out.max()), 1.0)

    def test_types_and_constant(self):
        array = film(5).astype(np.float64)
        out = ScaleIntensityPercentiles(0, 100)(array)
        self.assertIsInstance(out, np.ndarray)
        self.assertEqual(out.dtype, np.float64)
        np.testing.assert_allclose(out, (array - array.min()) / (array.max() - array.min()))
        flat = ScaleIntensityPercentiles(1, 99, b_min=0.25, b_max=1.0)(torch.full((1, 4, 4), 7, dtype=torch.uint8))
        self.assertEqual(flat.dtype, torch.float32)
        self.assertTrue(torch.equal(flat, torch.full((1, 4, 4), 0.25)))

    def test_no_clip(self):
        values = torch.arange(101, dtype=torch.float32)[None, None]
        out = ScaleIntensityPercentiles(10, 90, clip=False)(values)
        self.assertAlmostEqual(float(out.min()), -0.125)
        self.assertAlmostEqual(float(out.max()), 1.125)

    def test_dictionary_and_errors(self):
        data = {"a": torch.arange(10.0)[None], "b": torch.arange(20.0)[None]}
        out = ScaleIntensityPercentilesd(("a", "b"), 0, 100)(data)
        self.assertAlmostEqual(float(out["a"].max()), 1.0)
        self.assertAlmostEqual(float(out["b"][0, 10]), 10 / 19, places=6)
        with self.assertRaisesRegex(ValueError, r"key\(s\) \['c'\]"):
            ScaleIntensityPercentilesd("c", 0, 100)(data)
        with self.assertRaisesRegex(ValueError, "key 'a'.*empty"):
            ScaleIntensityPercentilesd("a", 0, 100)({"a": torch.zeros(1, 0)})
        with self.assertRaisesRegex(ValueError, "lower < upper"):
            ScaleIntensityPercentiles(60, 40)


if __name__ == "__main__":
    unittest.main()
