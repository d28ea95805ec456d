"""The batched, on-device Synthetic Lesion Mask draws what the per-image transform draws."""

import inspect
import unittest

import numpy as np
import torch
from parameterized import parameterized
from scipy import ndimage, stats

from monai_afire.transforms import (
    LesionBlob,
    RandSyntheticLesion,
    RandSyntheticLesionBatch,
    RandSyntheticLesionBatchD,
    RandSyntheticLesionBatchd,
    RandSyntheticLesiond,
    body_centres,
    find_body_region,
    patch_labels,
)
from monai_afire.transforms.batched_lesion import LesionBlobs, _largest_region

THREADS = torch.get_num_threads()


def setUpModule():  # many tiny tensor operations: one thread, so a busy machine does not stall them
    torch.set_num_threads(1)


def tearDownModule():
    torch.set_num_threads(THREADS)


OPTIONS = [
    ({"placement": "inside", "falloff": "rectangle", "clip_scope": "image"},),
    ({"placement": "anywhere", "falloff": "ellipse", "clip_scope": "image"},),
    ({"placement": "anywhere", "falloff": "rectangle", "clip_scope": "lesion"},),
    ({"placement": "inside", "falloff": "ellipse", "clip_scope": "lesion", "sigma": 0.8},),
]


def require_per_image_options(options: dict) -> None:
    """Skip when the per-image transform predates these options (they came with issue 9's lesion recipe)."""
    missing = sorted(set(options) - set(inspect.signature(RandSyntheticLesion).parameters))
    if missing:
        raise unittest.SkipTest(f"RandSyntheticLesion has no {missing} yet")


def chest_like(count: int, shape=(64, 64), seed: int = 0) -> torch.Tensor:
    """(count, 1, *shape) images in [0, 1]: dark air, a bright textured body at a random place, two darker lungs."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(*[(np.arange(s) + 0.5) / s - 0.5 for s in shape], indexing="ij")
    images = []
    for _ in range(count):
        dy, dx = rng.uniform(-0.12, 0.12, 2)
        body = ((x - dx) / rng.uniform(0.3, 0.46)) ** 2 + ((y - dy) / rng.uniform(0.35, 0.48)) ** 2 < 1
        lungs = ((np.abs(x - dx) - 0.17) / 0.12) ** 2 + ((y - dy) / 0.28) ** 2 < 1
        image = 0.05 + 0.7 * body - 0.35 * (lungs & body) + 0.15 * rng.random(shape)
        images.append(np.clip(image, 0, 1)[None])
    return torch.from_numpy(np.stack(images).astype(np.float32))


def blobs_of(per_image: list[tuple[LesionBlob, ...]], slots: int = 4) -> LesionBlobs:
    """The per-image transform's blobs as the batched transform's tensors."""
    batch = len(per_image)
    active = torch.zeros(batch, slots, dtype=torch.bool)
    start = torch.zeros(batch, slots, 2, dtype=torch.long)
    size = torch.ones(batch, slots, 2, dtype=torch.long)
    amplitude = torch.zeros(batch, slots)
    for b, blobs in enumerate(per_image):
        for k, blob in enumerate(blobs):
            active[b, k], amplitude[b, k] = True, blob.amplitude
            start[b, k], size[b, k] = torch.tensor(blob.start), torch.tensor(blob.size)
    return LesionBlobs(active, start, size, amplitude, torch.ones(batch, dtype=torch.bool))


def draw_statistics(masks: torch.Tensor, lesioned: torch.Tensor, clean: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image statistics of a lesion draw: abnormal-token fraction, lesion area, peak and mean amplitude, and the
    fraction of pixels the output changed."""
    inside = masks > 0
    area = inside.flatten(1).float().mean(1)
    mean_amplitude = (masks * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp(min=1)
    return {
        "abnormal tokens": patch_labels(masks, 8).float().mean(1).numpy(),
        "lesion area": area.numpy(),
        "peak amplitude": masks.flatten(1).max(1).values.numpy(),
        "mean amplitude": mean_amplitude.numpy(),
        "changed pixels": (lesioned != clean).flatten(1).float().mean(1).numpy(),
    }


def per_image_draws(images: torch.Tensor, draws: int, seed: int, **kwargs) -> dict[str, np.ndarray]:
    transform = RandSyntheticLesiond(keys="image", **kwargs).set_random_state(seed)
    outs = [transform({"image": images[i % len(images)]}) for i in range(draws)]
    stack = {k: torch.stack([o[k] for o in outs]) for k in ("image", "clean", "lesion_mask")}
    return draw_statistics(stack["lesion_mask"], stack["image"], stack["clean"])


def batched_draws(images: torch.Tensor, draws: int, seed: int, **kwargs) -> dict[str, np.ndarray]:
    transform = RandSyntheticLesionBatchd(keys="image", **kwargs).set_random_state(seed)
    outs = [transform({"image": images}) for _ in range(draws // len(images))]
    stack = {k: torch.cat([o[k] for o in outs]) for k in ("image", "clean", "lesion_mask")}
    return draw_statistics(stack["lesion_mask"], stack["image"], stack["clean"])


def differing(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """Statistics whose distributions differ: means more than 4 standard errors apart or a two-sample
    Kolmogorov-Smirnov p-value below 1e-3."""
    names = []
    for name in a:
        error = np.sqrt(a[name].var() / len(a[name]) + b[name].var() / len(b[name]))
        if abs(a[name].mean() - b[name].mean()) > 4 * error + 1e-9 or stats.ks_2samp(a[name], b[name]).pvalue < 1e-3:
            names.append(name)
    return names


class TestBodyCentres(unittest.TestCase):
    @parameterized.expand([((64, 64), 1), ((96, 60), 1), ((70, 128), 3)])
    def test_equals_find_body_region(self, shape, channels):
        images = chest_like(6, shape, seed=sum(shape)).repeat(1, channels, 1, 1)
        images[:, 1:] *= 0.8
        images[1] = 0.3  # constant: the image centre
        images[2, :, : shape[0] // 2] = 0.0  # two bodies: the larger wins
        centres = body_centres(images)
        expected = torch.tensor([find_body_region(image.numpy()).centre for image in images], dtype=torch.float32)
        torch.testing.assert_close(centres, expected)
        self.assertEqual(tuple(centres[1].tolist()), tuple((s - 1) / 2 for s in shape))

    @parameterized.expand([(0,), (1,), (2,)])
    def test_largest_region_equals_scipy(self, seed):
        rng = np.random.default_rng(seed)
        maps = rng.random((8, 30, 41)) < 0.55
        maps[0] = False
        maps[1] = False
        maps[1, 2:5, 3:6] = maps[1, 10:13, 20:23] = True  # a tie: the region met first in raster order
        region = _largest_region(torch.from_numpy(maps), iterations=32).numpy()
        for b in range(len(maps)):
            labels, count = ndimage.label(maps[b])
            expected = (
                np.zeros_like(maps[b]) if count == 0 else labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
            )
            np.testing.assert_array_equal(region[b], expected)
        self.assertTrue(region[1, 2:5, 3:6].all() and not region[1, 10:13, 20:23].any())


class TestSameMaskAsPerImage(unittest.TestCase):
    @parameterized.expand(OPTIONS)
    def test_given_blobs_give_the_per_image_mask_and_output(self, options):
        require_per_image_options(options)
        images = chest_like(8, (64, 48), seed=3)
        per_image = RandSyntheticLesion(**options).set_random_state(5)
        drawn, masks, outs = [], [], []
        for image in images:
            out, mask = per_image(image, return_mask=True)
            drawn.append(per_image.blobs)
            masks.append(mask)
            outs.append(out)
        batched = RandSyntheticLesionBatch(**options)
        out, mask = batched(images, return_mask=True, blobs=blobs_of(drawn))
        torch.testing.assert_close(mask, torch.stack(masks), atol=2e-6, rtol=0)
        torch.testing.assert_close(out, torch.stack(outs), atol=2e-6, rtol=0)
        # the same pixels are lesion (zero at the rectangle's corners, never a rounding speck): the token labels agree
        self.assertTrue(torch.equal(mask > 0, torch.stack(masks) > 0))
        self.assertGreaterEqual(float(mask.min()), 0.0)
        self.assertTrue(bool((mask > 0).any()))


class TestSameDistribution(unittest.TestCase):
    @parameterized.expand(OPTIONS[:2])
    def test_statistics_match_the_per_image_transform(self, options):
        require_per_image_options(options)
        images = chest_like(8, (64, 64), seed=1)
        per_image = per_image_draws(images, 480, seed=0, **options)
        batched = batched_draws(images, 480, seed=0, **options)
        self.assertEqual(differing(per_image, batched), [])
        self.assertGreater(batched["abnormal tokens"].mean(), 0.02)

    def test_the_comparison_detects_a_different_distribution(self):
        images = chest_like(8, (64, 64), seed=1)
        per_image = per_image_draws(images, 480, seed=0)
        smaller = batched_draws(images, 480, seed=0, lesion_size=(16 / 224, 96 / 224))
        self.assertIn("lesion area", differing(per_image, smaller))
        fainter = batched_draws(images, 480, seed=0, amplitude=0.4)
        self.assertIn("peak amplitude", differing(per_image, fainter))


class TestBatchTransform(unittest.TestCase):
    def test_prob_clip_and_reproducibility(self):
        images = chest_like(16, seed=2)
        clean = RandSyntheticLesionBatch(prob=0.0).set_random_state(0)
        out, mask = clean(images, return_mask=True)
        self.assertTrue(torch.equal(out, images))
        self.assertEqual(float(mask.abs().max()), 0.0)
        half = RandSyntheticLesionBatch(prob=0.5).set_random_state(0)
        lesioned = torch.cat([half(images, return_mask=True)[1].flatten(1).amax(1) > 0 for _ in range(8)])
        self.assertTrue(0.3 < float(lesioned.float().mean()) < 0.7)
        a = RandSyntheticLesionBatch().set_random_state(7)(images)
        b = RandSyntheticLesionBatch().set_random_state(7)(images)
        c = RandSyntheticLesionBatch().set_random_state(8)(images)
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))
        self.assertLessEqual(float(a.max()), 235 / 255 + 1e-6)
        unclipped = RandSyntheticLesionBatch(ceiling=None).set_random_state(7)
        out, mask = unclipped(images, return_mask=True)
        torch.testing.assert_close(out, images + mask)

    def test_dictionary_version_keys_and_shared_blobs(self):
        images = chest_like(4, seed=4)
        transform = RandSyntheticLesionBatchD(keys=("a", "b"), clean_key=("ca", "cb"), mask_key=("ma", "mb"))
        out = transform.set_random_state(0)({"a": images, "b": images.flip(-1), "label": 1})
        self.assertTrue(torch.equal(out["ca"], images))
        self.assertEqual(out["label"], 1)
        torch.testing.assert_close(out["a"], torch.clamp(images + out["ma"], 0, 235 / 255))
        self.assertTrue(torch.equal(out["ma"] > 0, out["mb"] > 0))  # same boxes, each image its own texture
        self.assertFalse(torch.equal(out["ma"], out["mb"]))

    @parameterized.expand(
        [
            ("not a batch", {"image": torch.zeros(1, 64, 64)}, "expected a batch"),
            ("integer", {"image": torch.zeros(2, 1, 64, 64, dtype=torch.uint8)}, "floating-point"),
            ("too small", {"image": torch.zeros(2, 1, 12, 12)}, "smaller than the smallest lesion"),
            ("missing key", {"img": torch.zeros(2, 1, 64, 64)}, r"\['image'\] not in the data"),
        ]
    )
    def test_bad_batches(self, _, data, message):
        with self.assertRaisesRegex(ValueError, message):
            RandSyntheticLesionBatchd(keys="image", lesion_size=(16, 32))(data)

    @unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA device")
    def test_no_host_device_synchronisation(self):
        images = chest_like(4).cuda()
        transform = RandSyntheticLesionBatchd(keys="image").set_random_state(0)
        transform({"image": images})  # first call: generator and kernels set up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = transform({"image": images})
        finally:
            torch.cuda.set_sync_debug_mode("default")
        self.assertEqual(out["lesion_mask"].device.type, "cuda")

    @parameterized.expand(
        [({"placement": "edge"}, "placement"), ({"falloff": "box"}, "falloff"), ({"sigma": 0}, "sigma")]
    )
    def test_bad_arguments(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, name):
            RandSyntheticLesionBatch(**kwargs)
        with self.assertRaisesRegex(ValueError, "must all be different"):
            RandSyntheticLesionBatchd(keys="image", clean_key="image")


if __name__ == "__main__":
    unittest.main()
