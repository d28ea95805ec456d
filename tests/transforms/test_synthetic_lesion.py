import itertools
import unittest

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, MetaTensor
from monai.transforms import Compose
from parameterized import parameterized

from monai_afire.transforms import (
    RandSyntheticLesion,
    RandSyntheticLesionD,
    RandSyntheticLesiond,
    RandSyntheticLesionDict,
    find_body_region,
    otsu_threshold,
)

CEILING = 235 / 255


def body_image(shape=(1, 48, 48), seed=0):
    """A dark background with a bright, textured body off the image centre."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, dtype=np.float32)
    body = tuple(slice(s // 4, s // 4 + s // 2) for s in shape[1:])
    img[(slice(None),) + body] = 0.6 + 0.3 * rng.random(img[(slice(None),) + body].shape)
    return img


def inside_some_blob(blobs, spatial):
    """Bool array: pixels strictly inside at least one blob's inscribed ellipse (pixel-centre coordinates)."""
    grids = np.meshgrid(*[np.arange(s) + 0.5 for s in spatial], indexing="ij")
    inside = np.zeros(spatial, dtype=bool)
    for blob in blobs:
        radius = sum(((g - b - z / 2) / (z / 2)) ** 2 for g, b, z in zip(grids, blob.start, blob.size))
        inside |= radius < 1
    return inside


def boxes_without_corners(blobs, spatial):
    """Bool array: pixels of at least one blob's bounding box that are not one of that box's corners."""
    out = np.zeros(spatial, dtype=bool)
    for blob in blobs:
        box = np.zeros(spatial, dtype=bool)
        box[tuple(slice(max(b, 0), b + z) for b, z in zip(blob.start, blob.size))] = True
        for corner in itertools.product(*[(b, b + z - 1) for b, z in zip(blob.start, blob.size)]):
            if all(0 <= c < s for c, s in zip(corner, spatial)):
                box[corner] = False
        out |= box
    return out


def as_type(array, kind):
    if kind == "numpy":
        return array
    if kind == "tensor":
        return torch.as_tensor(array)
    return MetaTensor(torch.as_tensor(array), meta={"filename_or_obj": "film.dcm", "note": 7})


CASES = [
    (kind, shape)
    for kind in ("numpy", "tensor", "meta")
    for shape in ((1, 48, 48), (3, 40, 56), (1, 24, 20, 16), (2, 16, 16, 16))
]


class TestRandSyntheticLesion(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_output_is_clipped_sum_of_input_and_mask(self, kind, shape):
        img = as_type(body_image(shape), kind)
        transform = RandSyntheticLesion(num_lesions=(2, 4))
        transform.set_random_state(3)
        out, mask = transform(img, return_mask=True)
        self.assertIs(type(out), type(img))
        self.assertIs(type(mask), type(img))
        self.assertEqual(tuple(out.shape), shape)
        self.assertEqual(tuple(mask.shape), shape)
        expected = np.clip(np.asarray(body_image(shape)) + np.asarray(mask), 0, CEILING)
        np.testing.assert_array_equal(np.asarray(out), expected)
        self.assertGreaterEqual(float(np.asarray(mask).min()), 0.0)
        self.assertGreater(float(np.asarray(mask).max()), 0.0)
        if kind == "meta":
            self.assertEqual(out.meta["filename_or_obj"], "film.dcm")
            self.assertEqual(mask.meta["note"], 7)

    @parameterized.expand([((1, 64, 64),), ((1, 32, 24, 20),)])
    def test_ellipse_mask_lies_inside_the_blobs_and_count_is_in_range(self, shape):
        """The earlier fall-off (``falloff="ellipse"``, ``placement="anywhere"``): zero outside every ellipse."""
        img = body_image(shape)
        transform = RandSyntheticLesion(num_lesions=(1, 3), placement="anywhere", falloff="ellipse")
        counts = set()
        for seed in range(12):
            transform.set_random_state(seed)
            _, mask = transform(img, return_mask=True)
            blobs = transform.blobs
            counts.add(len(blobs))
            self.assertTrue(1 <= len(blobs) <= 3)
            support = (mask > 0).any(axis=0)
            inside = inside_some_blob(blobs, shape[1:])
            self.assertFalse((support & ~inside).any(), "mask is non-zero outside every blob ellipse")
            self.assertTrue(support.any())
        self.assertGreater(len(counts), 1)

    @parameterized.expand([((1, 64, 64),), ((1, 32, 24, 20),)])
    def test_rectangle_mask_fills_the_boxes_but_their_corners(self, shape):
        """Default fall-off on a body of positive texture: the support is the union of the boxes without corners."""
        img = body_image(shape)
        transform = RandSyntheticLesion(num_lesions=(1, 3))
        for seed in range(12):
            transform.set_random_state(seed)
            _, mask = transform(img, return_mask=True)
            support = (mask > 0).any(axis=0)
            np.testing.assert_array_equal(support, boxes_without_corners(transform.blobs, shape[1:]))

    @parameterized.expand([((4, 6), (64, 48), (4, 6), (4, 6)), ((0.25, 0.5), (64, 32), (16, 32), (8, 16))])
    def test_lesion_sizes_in_fractions_or_pixels(self, lesion_size, spatial, range0, range1):
        transform = RandSyntheticLesion(lesion_size=lesion_size, num_lesions=4)
        img = body_image((1,) + spatial)
        for seed in range(5):
            transform.set_random_state(seed)
            transform(img)
            self.assertEqual(len(transform.blobs), 4)
            for blob in transform.blobs:
                self.assertTrue(range0[0] <= blob.size[0] <= range0[1], blob)
                self.assertTrue(range1[0] <= blob.size[1] <= range1[1], blob)

    def test_peak_is_amplitude_times_texture(self):
        """On a constant image the texture is the constant, so an odd-sized blob peaks at amplitude * value."""
        img = np.full((1, 41, 41), 0.4, dtype=np.float32)
        transform = RandSyntheticLesion(num_lesions=1, lesion_size=(11, 11), amplitude=0.5, ceiling=None)
        for seed in range(5):
            transform.set_random_state(seed)
            _, mask = transform(img, return_mask=True)
            blob = transform.blobs[0]
            if all(b >= 0 and b + z <= 41 for b, z in zip(blob.start, blob.size)):
                self.assertAlmostEqual(float(mask.max()), 0.2, places=5)
                centre = tuple(b + z // 2 for b, z in zip(blob.start, blob.size))
                self.assertAlmostEqual(float(mask[(0,) + centre]), 0.2, places=5)
                return
        self.fail("no seed placed the blob fully inside the image")

    def test_amplitude_range(self):
        transform = RandSyntheticLesion(num_lesions=4, amplitude=(0.2, 0.3))
        transform.set_random_state(1)
        transform(body_image())
        amplitudes = [b.amplitude for b in transform.blobs]
        self.assertTrue(all(0.2 <= a <= 0.3 for a in amplitudes))
        self.assertGreater(len(set(amplitudes)), 1)

    def test_texture_comes_from_the_body(self):
        """A body of constant value 0.8 off-centre: the texture is that value, not the dark image centre."""
        img = np.zeros((1, 60, 60), dtype=np.float32)
        img[0, 30:58, 30:58] = 0.8
        transform = RandSyntheticLesion(num_lesions=1, lesion_size=(9, 9), texture_size=8, ceiling=None)
        transform.set_random_state(0)
        _, mask = transform(img, return_mask=True)
        self.assertAlmostEqual(float(mask.max()), 0.5 * 0.8, places=5)

    def test_foreground_only_places_centres_on_the_body(self):
        img = np.zeros((1, 64, 64), dtype=np.float32)
        img[0, 40:60, 8:30] = 0.9
        transform = RandSyntheticLesion(num_lesions=4, lesion_size=(5, 9), foreground_only=True)
        for seed in range(6):
            transform.set_random_state(seed)
            transform(img)
            for blob in transform.blobs:
                y, x = (b + z // 2 for b, z in zip(blob.start, blob.size))
                self.assertTrue(40 <= y < 60 and 8 <= x < 30, blob)

    def test_same_seed_same_output(self):
        img = torch.as_tensor(body_image((1, 40, 40)))
        first = RandSyntheticLesion().set_random_state(5)(img)
        second = RandSyntheticLesion().set_random_state(5)(img)
        other = RandSyntheticLesion().set_random_state(6)(img)
        self.assertTrue(torch.equal(first, second))
        self.assertFalse(torch.equal(first, other))

    def test_randomize_false_reuses_blobs(self):
        transform = RandSyntheticLesion().set_random_state(0)
        img = body_image((1, 32, 32))
        _, mask = transform(img, return_mask=True)
        _, again = transform(img, randomize=False, return_mask=True)
        np.testing.assert_array_equal(mask, again)
        with self.assertRaisesRegex(ValueError, "spatial shape"):
            transform(body_image((1, 40, 32)), randomize=False)

    def test_prob_zero_returns_input(self):
        img = torch.as_tensor(body_image())
        out, mask = RandSyntheticLesion(prob=0.0)(img, return_mask=True)
        self.assertIs(out, img)
        self.assertEqual(float(mask.abs().sum()), 0.0)

    def test_integer_input_gives_float_output(self):
        img = (body_image() * 200).astype(np.uint8)
        out = RandSyntheticLesion(ceiling=None).set_random_state(0)(img)
        self.assertEqual(out.dtype, np.float32)
        self.assertTrue((out >= img).all())

    def test_constant_image_is_a_sensible_result(self):
        zero = np.zeros((1, 32, 32), dtype=np.float32)
        out, mask = RandSyntheticLesion().set_random_state(0)(zero, return_mask=True)
        np.testing.assert_array_equal(out, zero)
        np.testing.assert_array_equal(mask, zero)
        bright = np.ones((1, 32, 32), dtype=np.float32)
        out = RandSyntheticLesion().set_random_state(0)(bright)
        np.testing.assert_allclose(out, CEILING)

    @parameterized.expand(
        [
            ("nan", np.pad(np.array([[[np.nan]]]), ((0, 0), (5, 26), (3, 28))), "NaN"),
            ("inf", np.full((1, 32, 32), np.inf), "NaN or infinite"),
            ("empty", np.zeros((1, 0, 32)), "empty"),
            ("no channel", np.zeros((32,)), "channel-first"),
            ("five dims", np.zeros((1, 1, 8, 8, 8)), "channel-first"),
        ]
    )
    def test_bad_images(self, _, img, message):
        with self.assertRaisesRegex(ValueError, message):
            RandSyntheticLesion()(img.astype(np.float32))

    def test_image_smaller_than_smallest_lesion(self):
        with self.assertRaisesRegex(ValueError, r"smaller than the smallest lesion"):
            RandSyntheticLesion(lesion_size=(16, 32))(np.zeros((1, 12, 40), dtype=np.float32))

    @parameterized.expand(
        [
            ({"num_lesions": (3, 1)}, "num_lesions"),
            ({"lesion_size": (0.5, 0.2)}, "lesion_size"),
            ({"lesion_size": 0}, "lesion_size"),
            ({"amplitude": -0.1}, "amplitude"),
            ({"ceiling": 0.0}, "ceiling"),
            ({"texture_size": 0}, "texture_size"),
            ({"sigma": 0}, "sigma"),
            ({"placement": "border"}, "placement"),
            ({"falloff": "disc"}, "falloff"),
            ({"clip_scope": "body"}, "clip_scope"),
        ]
    )
    def test_bad_arguments(self, kwargs, name):
        with self.assertRaisesRegex(ValueError, name):
            RandSyntheticLesion(**kwargs)


class TestLesionOptions(unittest.TestCase):
    """The authors' choices (the defaults) and the earlier ones, each a named option."""

    @parameterized.expand(
        [
            (shape, foreground)
            for shape in ((1, 16, 16), (1, 24, 40), (2, 57, 31), (1, 224, 224), (1, 16, 20, 12), (1, 33, 17, 25))
            for foreground in (False, True)
        ]
    )
    def test_inside_never_cuts_a_blob_at_the_border(self, shape, foreground_only):
        spatial = shape[1:]
        img = np.full(shape, 0.5, dtype=np.float32)  # positive texture: the mask shows every blob pixel
        img[(slice(None),) + tuple(slice(0, s // 3) for s in spatial)] = 0.1  # something for Otsu to find
        transform = RandSyntheticLesion(num_lesions=(1, 4), lesion_size=(0.3, 0.99), foreground_only=foreground_only)
        for seed in range(25):
            transform.set_random_state(seed)
            _, mask = transform(img, return_mask=True)
            for blob in transform.blobs:
                for b, z, s in zip(blob.start, blob.size, spatial):
                    self.assertTrue(0 <= b and b + z <= s, f"{blob} crosses the border of {spatial}")
            support = (np.asarray(mask) > 0).any(axis=0)
            np.testing.assert_array_equal(support, boxes_without_corners(transform.blobs, spatial))

    def test_anywhere_may_cut_a_blob_at_the_border(self):
        transform = RandSyntheticLesion(num_lesions=4, placement="anywhere")
        cut = False
        for seed in range(10):
            transform.set_random_state(seed)
            transform(body_image((1, 32, 32)))
            cut |= any(b < 0 or b + z > 32 for blob in transform.blobs for b, z in zip(blob.start, blob.size))
        self.assertTrue(cut)

    @parameterized.expand([((33, 33), (1, 12)), ((40, 24), (6, 11)), ((18, 21, 24), (1, 9)), ((20, 20, 20), (5, 7))])
    def test_rectangle_falloff_is_zero_only_at_the_corners_and_peaks_at_the_amplitude(self, spatial, size_range):
        img = np.full((1,) + spatial, 0.4, dtype=np.float32)  # constant: the texture is 0.4 everywhere
        transform = RandSyntheticLesion(num_lesions=1, lesion_size=size_range, amplitude=0.5, ceiling=None)
        odd = 0
        for seed in range(30):
            transform.set_random_state(seed)
            _, mask = transform(img, return_mask=True)
            blob = transform.blobs[0]
            region = (0,) + tuple(slice(b, b + z) for b, z in zip(blob.start, blob.size))
            box = np.asarray(mask)[region].copy()
            self.assertAlmostEqual(float(box.max()), 0.5 * 0.4, places=6, msg=str(blob))
            outside = np.asarray(mask).copy()
            outside[region] = 0
            self.assertFalse(outside.any(), "the mask is non-zero outside the box")
            corners = np.zeros(blob.size, dtype=bool)
            for corner in itertools.product(*[(0, z - 1) for z in blob.size]):
                corners[corner] = True
            if max(blob.size) > 1:
                np.testing.assert_array_equal(box == 0, corners, err_msg=str(blob))
            if all(z % 2 for z in blob.size):
                odd += 1
                self.assertAlmostEqual(float(box[tuple(z // 2 for z in blob.size)]), 0.2, places=6)
        self.assertGreater(odd, 0, "no blob with odd sides: the centre was not checked")

    def test_ellipse_falloff_is_zero_near_the_box_corners(self):
        img = np.full((1, 40, 40), 0.4, dtype=np.float32)
        transform = RandSyntheticLesion(num_lesions=1, lesion_size=(15, 15), ceiling=None, falloff="ellipse")
        rectangle = RandSyntheticLesion(num_lesions=1, lesion_size=(15, 15), ceiling=None)
        _, mask = transform.set_random_state(0)(img, return_mask=True)
        _, rect = rectangle.set_random_state(0)(img, return_mask=True)
        y, x = transform.blobs[0].start
        self.assertEqual(rectangle.blobs[0].start, (y, x))
        self.assertEqual(float(mask[0, y + 1, x + 1]), 0.0)  # outside the inscribed ellipse ...
        self.assertGreater(float(rect[0, y + 1, x + 1]), 0.0)  # ... but inside the rectangle
        self.assertEqual(float(rect[0, y, x]), 0.0)
        self.assertAlmostEqual(float(mask.max()), float(rect.max()), places=6)

    @parameterized.expand([((1, 48, 48),), ((1, 20, 24, 16),)])
    def test_lesion_clip_scope_leaves_other_pixels_unchanged(self, shape):
        img = body_image(shape)
        img[img > 0.75] = 0.99  # well above the ceiling, inside and outside the lesions
        image_scope = RandSyntheticLesion(num_lesions=(1, 2)).set_random_state(4)
        lesion_scope = RandSyntheticLesion(num_lesions=(1, 2), clip_scope="lesion").set_random_state(4)
        out_image, mask = image_scope(img, return_mask=True)
        out_lesion, mask2 = lesion_scope(img, return_mask=True)
        np.testing.assert_array_equal(mask, mask2)
        touched = mask > 0
        self.assertTrue(touched.any() and (~touched & (img > CEILING)).any())
        np.testing.assert_array_equal(out_lesion[~touched], img[~touched])
        np.testing.assert_array_equal(out_lesion[touched], np.clip(img + mask, 0, CEILING)[touched])
        np.testing.assert_array_equal(out_image, np.clip(img + mask, 0, CEILING))
        self.assertTrue((out_image[~touched] < img[~touched]).any(), "the image scope lowers untouched pixels")

    def test_lesion_clip_scope_in_the_dictionary_transform(self):
        img = body_image((1, 40, 40))
        img[img > 0.75] = 0.99
        out = RandSyntheticLesiond(clip_scope="lesion", placement="anywhere", falloff="ellipse").set_random_state(1)(
            {"image": img}
        )
        untouched = np.asarray(out["lesion_mask"]) == 0
        np.testing.assert_array_equal(np.asarray(out["image"])[untouched], img[untouched])
        self.assertEqual(out["image"].dtype, np.float32)


class TestFindBodyRegion(unittest.TestCase):
    def test_otsu_separates_two_modes(self):
        rng = np.random.default_rng(0)
        values = np.concatenate([rng.normal(0.2, 0.03, 500), rng.normal(0.7, 0.03, 300)])
        threshold = otsu_threshold(values)
        self.assertTrue(values[:500].max() <= threshold < values[500:].min())
        self.assertTrue(0.4 < threshold < 0.5, "the threshold lies in the middle of the gap")
        self.assertIsNone(otsu_threshold(np.full(10, 3.0)))

    @parameterized.expand([(64,), (200,)])
    def test_centre_of_largest_region(self, side):
        img = np.zeros((1, side, side), dtype=np.float32)
        a, b = side // 2, side - side // 8
        img[0, a:b, a:b] = 1.0  # the body
        img[0, 2 : side // 10, 2 : side // 10] = 1.0  # a smaller bright marker
        region = find_body_region(img)
        expected = (a + b - 1) / 2
        for c in region.centre:
            self.assertLess(abs(c - expected), region.stride + 1)
        marker = (side // 20) // region.stride
        self.assertFalse(region.foreground[marker, marker], "the smaller bright region is not the body")
        self.assertTrue(region.foreground[(a + b) // 2 // region.stride, (a + b) // 2 // region.stride])

    def test_constant_image_falls_back_to_the_centre(self):
        region = find_body_region(np.full((1, 30, 20, 10), 0.5, dtype=np.float32))
        self.assertEqual(region.centre, (14.5, 9.5, 4.5))
        self.assertIsNone(region.foreground)


class TestRandSyntheticLesiond(unittest.TestCase):
    def test_aliases(self):
        self.assertIs(RandSyntheticLesionD, RandSyntheticLesiond)
        self.assertIs(RandSyntheticLesionDict, RandSyntheticLesiond)

    @parameterized.expand([((1, 48, 48),), ((1, 20, 20, 20),)])
    def test_keys_and_identity(self, shape):
        img = MetaTensor(torch.as_tensor(body_image(shape)), meta={"filename_or_obj": "a.png"})
        transform = RandSyntheticLesiond(keys="image").set_random_state(2)
        out = transform({"image": img, "label": 1})
        self.assertEqual(set(out), {"image", "clean", "lesion_mask", "label"})
        self.assertIs(out["clean"], img)
        self.assertTrue(torch.equal(out["image"], torch.clamp(img + out["lesion_mask"], 0, CEILING)))
        self.assertGreaterEqual(float(out["lesion_mask"].min()), 0.0)
        self.assertEqual(out["lesion_mask"].meta["filename_or_obj"], "a.png")
        self.assertEqual(out["image"].meta["filename_or_obj"], "a.png")

    def test_custom_keys_and_several_images_share_blobs(self):
        img = body_image((1, 40, 40))
        transform = RandSyntheticLesiond(
            keys=["a", "b"], clean_key=["a_clean", "b_clean"], mask_key=["a_mask", "b_mask"]
        ).set_random_state(0)
        out = transform({"a": img, "b": img * 0.5})
        np.testing.assert_allclose(out["b_mask"], out["a_mask"] * 0.5, atol=1e-6)
        np.testing.assert_array_equal(out["b_clean"], img * 0.5)

    def test_prob_zero_gives_zero_mask_and_unchanged_image(self):
        img = torch.as_tensor(body_image())
        out = RandSyntheticLesiond(prob=0.0)({"image": img})
        self.assertIs(out["image"], img)
        self.assertTrue(torch.equal(out["clean"], img))
        self.assertEqual(out["lesion_mask"].shape, img.shape)
        self.assertEqual(float(out["lesion_mask"].abs().sum()), 0.0)

    def test_prob_is_respected(self):
        transform = RandSyntheticLesiond(prob=0.5).set_random_state(0)
        lesioned = [bool(transform({"image": body_image((1, 24, 24))})["lesion_mask"].any()) for _ in range(40)]
        self.assertTrue(5 < sum(lesioned) < 35)

    def test_seed_forwarded_to_array_transform(self):
        img = body_image()
        first = RandSyntheticLesiond().set_random_state(11)({"image": img})
        second = RandSyntheticLesiond().set_random_state(11)({"image": img})
        np.testing.assert_array_equal(first["lesion_mask"], second["lesion_mask"])

    def test_missing_key(self):
        with self.assertRaisesRegex(ValueError, "'img'"):
            RandSyntheticLesiond(keys="img")({"image": body_image()})
        out = RandSyntheticLesiond(keys="img", allow_missing_keys=True)({"image": body_image()})
        self.assertEqual(set(out), {"image"})

    def test_bad_image_names_the_key(self):
        with self.assertRaisesRegex(ValueError, "key 'image'.*NaN"):
            RandSyntheticLesiond()({"image": np.full((1, 32, 32), np.nan, dtype=np.float32)})

    def test_output_key_clash(self):
        with self.assertRaisesRegex(ValueError, "different"):
            RandSyntheticLesiond(keys="image", clean_key="image")
        with self.assertRaisesRegex(ValueError, "different"):
            RandSyntheticLesiond(clean_key="x", mask_key="x")

    def test_cache_dataset_and_workers_give_fresh_lesions(self):
        img = body_image((1, 32, 32))
        data = [{"image": img} for _ in range(8)]
        dataset = CacheDataset(data, transform=Compose([RandSyntheticLesiond()]), progress=False)
        loader = DataLoader(dataset, batch_size=4, num_workers=2)
        epochs = []
        for _ in range(2):
            batches = list(loader)
            masks = torch.cat([b["lesion_mask"] for b in batches])
            clean = torch.cat([b["clean"] for b in batches])
            self.assertEqual(masks.shape, (8, 1, 32, 32))
            self.assertTrue(torch.equal(clean, torch.as_tensor(img)[None].expand(8, -1, -1, -1)))
            self.assertEqual(len({tuple(m.tolist()) for m in masks.flatten(1)}), 8, "two items got the same lesion")
            epochs.append(masks)
        self.assertFalse(torch.equal(epochs[0], epochs[1]), "lesions were cached across epochs")


if __name__ == "__main__":
    unittest.main()
