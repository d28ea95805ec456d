import unittest
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, Resized, ScaleIntensityRangePercentilesd, SpatialPadd
from parameterized import parameterized
from PIL import Image

from monai_afire.transforms import (
    PHOTOMETRIC_TAG,
    InvertMonochrome1,
    InvertMonochrome1d,
    LoadRadiograph,
    LoadRadiographd,
    PrepareRadiograph,
    PrepareRadiographd,
    ToGrayscale,
    ToGrayscaled,
    radiograph_transforms,
)
from tests.tiny import TmpDirTestCase

TINY_CR = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"


def messages(error: BaseException) -> str:
    """All messages along an exception chain (MONAI's Compose wraps errors in RuntimeError)."""
    text = []
    while error is not None:
        text.append(str(error))
        error = error.__cause__
    return "\n".join(text)


def real_film() -> str:
    from pydicom.data import get_testdata_file

    try:
        path = get_testdata_file("RG1_UNCR.dcm", download=False)
    except Exception:
        path = None
    if path is None:
        raise unittest.SkipTest("pydicom-data is not installed")
    return path


def gradient(rows=20, cols=30):
    """A (rows, cols) picture whose value grows with the column index, plus one bright pixel at (3, 5)."""
    picture = np.tile(np.linspace(10, 200, cols), (rows, 1))
    picture[3, 5] = 255
    return picture


class TestRealFilms(unittest.TestCase):
    def test_real_film_lungs_darker_than_spine(self):
        out = radiograph_transforms(image_size=224)({"image": real_film()})["image"]
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.shape, (1, 224, 224))
        self.assertEqual(out.dtype, torch.float32)
        self.assertAlmostEqual(float(out.min()), 0.0)
        self.assertAlmostEqual(float(out.max()), 1.0)
        film = out[0].T  # rows, columns
        spine = film[70:150, 104:120].mean()
        lungs = (film[70:150, 40:80].mean() + film[70:150, 144:184].mean()) / 2
        self.assertLess(float(lungs) + 0.1, float(spine))
        self.assertTrue(out.meta["filename_or_obj"].endswith("RG1_UNCR.dcm"))
        self.assertEqual(out.meta[PHOTOMETRIC_TAG]["Value"], ["MONOCHROME2"])

    def test_tiny_cr_is_inverted_and_rescaled(self):
        self.assertTrue(TINY_CR.is_file())
        dataset = pydicom.dcmread(TINY_CR)
        self.assertEqual(dataset.PhotometricInterpretation, "MONOCHROME1")
        raw = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
        loaded = LoadRadiograph()(TINY_CR)
        self.assertEqual(loaded.meta[PHOTOMETRIC_TAG]["Value"], ["MONOCHROME1"])
        np.testing.assert_allclose(loaded[0].numpy(), raw.T, rtol=1e-5)  # MONAI convention: first axis = width
        inverted = InvertMonochrome1()(loaded)
        np.testing.assert_allclose(inverted[0].numpy(), (raw.max() + raw.min() - raw).T, rtol=1e-5)
        out = radiograph_transforms(image_size=16, lower_percentile=0, upper_percentile=100)({"image": str(TINY_CR)})
        expected = (raw.max() - raw) / (raw.max() - raw.min())
        np.testing.assert_allclose(out["image"][0].numpy(), expected.T, atol=1e-5)

    def test_rgb_dicom_samples_become_channels(self):
        path = Path(pydicom.__file__).parent / "data" / "test_files" / "SC_rgb_dcmtk_+eb+cr.dcm"
        if not path.is_file():
            self.skipTest("pydicom's RGB test file is absent")
        rgb = pydicom.dcmread(path).pixel_array.astype(np.float32)
        loaded = LoadRadiograph()(path)
        self.assertEqual(loaded.shape, (3,) + rgb.shape[1::-1])
        np.testing.assert_allclose(loaded[1].numpy(), rgb[..., 1].T)
        gray = ToGrayscale()(loaded)
        np.testing.assert_allclose(gray[0].numpy(), (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).T, rtol=1e-5)
        self.assertEqual(radiograph_transforms(image_size=32)({"image": str(path)})["image"].shape, (1, 32, 32))


class TestRadiographFiles(TmpDirTestCase):
    @parameterized.expand(
        [
            ("gray8.png", lambda p: p.astype(np.uint8)),
            ("gray16.png", lambda p: (p * 250).astype(np.uint16)),
            ("gray.jpg", lambda p: p.astype(np.uint8)),
            ("rgb.png", lambda p: np.repeat(p.astype(np.uint8)[..., None], 3, axis=2)),
            ("rgba.png", lambda p: np.dstack([p.astype(np.uint8)] * 3 + [np.full(p.shape, 255, np.uint8)])),
        ]
    )
    def test_png_and_jpeg(self, name, make):
        picture = make(gradient())
        path = self.tmp / name
        Image.fromarray(picture).save(path)
        loaded = LoadRadiograph()(path)
        self.assertEqual(loaded.shape[1:], (30, 20))  # MONAI convention: (width, height)
        out = radiograph_transforms(image_size=32, lower_percentile=0, upper_percentile=100)({"image": str(path)})
        image = out["image"]
        self.assertEqual(image.shape, (1, 32, 32))
        self.assertAlmostEqual(float(image.max()), 1.0, places=5)
        self.assertGreaterEqual(float(image.min()), 0.0)
        # longest side 30 -> 32, shorter 20 -> 21 (rounded), centred: zero padding above and below
        columns = image[0].T
        content_rows = torch.nonzero(columns.abs().sum(1) > 0).flatten()
        self.assertTrue(19 <= len(content_rows) <= 22, len(content_rows))
        self.assertTrue(content_rows.min() >= 4 and content_rows.max() <= 27)
        # brightness grows from left to right as in the file
        row = columns[int(content_rows.float().mean()), :]
        self.assertLess(float(row[:8].mean()), float(row[-8:].mean()))

    def test_palette_png_becomes_one_channel(self):
        path = self.tmp / "palette.png"
        Image.fromarray(gradient().astype(np.uint8)).convert("P").save(path)
        loaded = ToGrayscale()(LoadRadiograph()(path))
        self.assertEqual(loaded.shape, (1, 30, 20))
        self.assertLess(float(loaded[0, 0].mean()), float(loaded[0, -1].mean()))

    @parameterized.expand([((30, 20),), ((30, 20, 1),)])
    def test_nifti(self, shape):
        array = gradient().T.reshape(shape).astype(np.float32)
        path = self.tmp / "film.nii.gz"
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
        out = radiograph_transforms(image_size=24)({"image": str(path)})["image"]
        self.assertEqual(out.shape, (1, 24, 24))
        self.assertTrue(0.0 <= float(out.min()) and float(out.max()) <= 1.0)

    def test_constant_image_gives_zeros(self):
        path = self.tmp / "flat.png"
        Image.fromarray(np.full((20, 20), 77, np.uint8)).save(path)
        out = radiograph_transforms(image_size=16)({"image": str(path)})["image"]
        self.assertEqual(float(out.abs().max()), 0.0)

    def test_missing_file(self):
        path = str(self.tmp / "absent.dcm")
        with self.assertRaisesRegex(RuntimeError, "absent.dcm"):
            LoadRadiograph()(path)

    @parameterized.expand([("notes.dcm",), ("notes.png",), ("notes",)])
    def test_unreadable_file(self, name):
        path = self.tmp / name
        path.write_text("not an image")
        with self.assertRaises(RuntimeError) as caught:
            radiograph_transforms()({"image": str(path)})
        self.assertIn(str(path), messages(caught.exception))

    def test_dicom_without_pixel_data(self):
        path = str(self.tmp / "header_only.dcm")
        dataset = pydicom.dcmread(TINY_CR)
        del dataset.PixelData
        dataset.save_as(path)
        with self.assertRaisesRegex(RuntimeError, "header_only.dcm"):
            LoadRadiograph()(path)

    def test_nan_pixels(self):
        array = np.ones((8, 8), np.float32)
        array[2, 3] = np.nan
        path = self.tmp / "nan.nii"
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
        with self.assertRaises(RuntimeError) as caught:
            radiograph_transforms()({"image": str(path)})
        self.assertRegex(messages(caught.exception), "nan.nii contains NaN")

    def test_nan_pixels_in_a_float_tiff(self):
        array = np.ones((8, 8), np.float32)
        array[2, 3] = np.nan
        path = self.tmp / "nan.tiff"
        Image.fromarray(array).save(path)
        with self.assertRaisesRegex(ValueError, "nan.tiff contains NaN"):
            LoadRadiograph()(path)
        Image.fromarray(np.ones((8, 8), np.float32)).save(path)
        self.assertEqual(LoadRadiograph()(path).meta["mode"], "F")

    def test_volume_is_rejected(self):
        path = self.tmp / "volume.nii.gz"
        nib.save(nib.Nifti1Image(np.ones((8, 8, 4), np.float32), np.eye(4)), path)
        with self.assertRaisesRegex(ValueError, "volume.nii.gz is not a 2-D image"):
            LoadRadiograph()(path)

    def test_wrong_key(self):
        with self.assertRaises(RuntimeError) as caught:
            radiograph_transforms()({"img": str(TINY_CR)})
        self.assertRegex(messages(caught.exception), r"\['image'\] not in the data")
        with self.assertRaisesRegex(ValueError, "'image'"):
            LoadRadiographd()({"path": str(TINY_CR)})

    @parameterized.expand([({"image_size": 0},), ({"lower_percentile": 60, "upper_percentile": 40},)])
    def test_bad_arguments(self, kwargs):
        with self.assertRaises(ValueError):
            radiograph_transforms(**kwargs)


class TestArrayTransforms(unittest.TestCase):
    def test_invert_only_monochrome1_and_only_once(self):
        img = MetaTensor(torch.tensor([[[1.0, 3.0], [5.0, 9.0]]]), meta={PHOTOMETRIC_TAG: {"Value": ["MONOCHROME1"]}})
        once = InvertMonochrome1d(keys="image")({"image": img})["image"]
        self.assertTrue(torch.equal(once.as_tensor(), torch.tensor([[[9.0, 7.0], [5.0, 1.0]]])))
        twice = InvertMonochrome1()(once)
        self.assertTrue(torch.equal(twice.as_tensor(), once.as_tensor()))
        plain = MetaTensor(torch.ones(1, 2, 2), meta={"PhotometricInterpretation": "MONOCHROME2"})
        self.assertIs(InvertMonochrome1()(plain), plain)
        array = np.ones((1, 2, 2))
        self.assertIs(InvertMonochrome1()(array), array)
        named = MetaTensor(torch.tensor([[[0.0, 2.0]]]), meta={"PhotometricInterpretation": "MONOCHROME1"})
        self.assertTrue(torch.equal(InvertMonochrome1()(named).as_tensor(), torch.tensor([[[2.0, 0.0]]])))

    @parameterized.expand([("tensor",), ("numpy",)])
    def test_grayscale(self, kind):
        rgb = np.stack([np.full((2, 3), 1.0), np.zeros((2, 3)), np.zeros((2, 3))]).astype(np.float32)
        rgba = np.concatenate([rgb, np.ones((1, 2, 3), np.float32)])
        for data, expected in ((rgb, 0.299), (rgba, 0.299), (rgb[:2], 1.0), (rgb[:1], 1.0)):
            data = torch.as_tensor(data) if kind == "tensor" else data
            out = ToGrayscaled(keys="image")({"image": data})["image"]
            self.assertEqual(type(out), type(data))
            self.assertEqual(tuple(out.shape), (1, 2, 3))
            np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "5 channels"):
            ToGrayscale()(np.zeros((5, 2, 2)))


def monai_preparation(image_size, lower=0.5, upper=99.5):
    """The MONAI steps that :class:`PrepareRadiograph` replaces (after inversion and grey conversion)."""
    return [
        InvertMonochrome1d("image"),
        ToGrayscaled("image"),
        Resized("image", spatial_size=image_size, size_mode="longest", mode="area"),
        ScaleIntensityRangePercentilesd("image", lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True),
        SpatialPadd("image", spatial_size=(image_size, image_size)),
    ]


class TestPrepareEqualsMonai(TmpDirTestCase):
    """The fast paths give what the MONAI transforms they replace give."""

    @parameterized.expand(
        [
            ("L", lambda p: p.astype(np.uint8), "png"),
            ("I;16", lambda p: (p * 250).astype(np.uint16), "png"),
            ("RGB", lambda p: np.dstack([p, p[::-1], p[:, ::-1] / 2]).astype(np.uint8), "png"),
            ("RGBA", lambda p: np.dstack([p.astype(np.uint8)] * 4), "png"),
            ("LA", lambda p: np.dstack([p.astype(np.uint8)] * 2), "png"),
            ("P", lambda p: p.astype(np.uint8), "png"),
            ("1", lambda p: p.astype(np.uint8), "png"),
            ("L", lambda p: p.astype(np.uint8), "jpg"),
        ]
    )
    def test_load_pil_equals_monai_loader(self, mode, make, suffix):
        path = self.tmp / f"film.{suffix}"
        Image.fromarray(make(np.tile(np.linspace(10, 200, 30), (20, 1)) + gradient() % 7)).convert(mode).save(path)
        fast = LoadRadiograph()(path)
        reference = LoadImage(image_only=True, ensure_channel_first=True, dtype="float32")(
            str(path), reader=LoadRadiograph().pil
        )
        self.assertIsInstance(reference.meta, dict)
        self.assertEqual(fast.shape, reference.shape)
        self.assertEqual(fast.dtype, torch.float32)
        self.assertTrue(torch.equal(fast.as_tensor(), reference.as_tensor()))
        self.assertEqual(sorted(map(str, fast.meta)), sorted(map(str, reference.meta)))
        for key, value in reference.meta.items():
            if isinstance(value, float) and np.isnan(value):
                self.assertTrue(np.isnan(fast.meta[key]), key)
            else:
                np.testing.assert_array_equal(np.asarray(fast.meta[key]), np.asarray(value), err_msg=str(key))

    @parameterized.expand(
        [
            ("wide_down", (1, 300, 170), 64, 0.5, 99.5, None),
            ("tall_down", (1, 41, 97), 32, 1.0, 99.0, None),
            ("square_same", (1, 48, 48), 48, 0.5, 99.5, None),
            ("up", (1, 11, 16), 40, 0.0, 100.0, None),
            ("rgb", (3, 50, 35), 32, 0.5, 99.5, None),
            ("monochrome1", (1, 60, 45), 32, 0.5, 99.5, "MONOCHROME1"),
            ("ties", (1, 90, 64), 56, 0.5, 99.5, "MONOCHROME2"),
        ]
    )
    def test_prepare_equals_monai_chain(self, _, shape, size, lower, upper, photometric):
        rng = np.random.default_rng(sum(shape))
        data = torch.from_numpy(rng.gamma(2.0, 400.0, size=shape).astype(np.float32))
        if _ == "ties":
            data = torch.round(data / data.max() * 15)
        affine = torch.tensor([[0.5, 0, 0, 3], [0, 0.7, 0, -2], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
        meta = {"filename_or_obj": "f.png", "affine": affine}
        if photometric:
            meta[PHOTOMETRIC_TAG] = {"vr": "CS", "Value": [photometric]}
        image = MetaTensor(data, meta=meta)
        expected = {"image": image.clone()}
        for step in monai_preparation(size, lower, upper):
            expected = step(expected)
        expected = expected["image"]
        out = PrepareRadiographd("image", size, lower, upper)({"image": image})["image"]
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.shape, expected.shape)
        self.assertEqual(out.dtype, torch.float32)
        # torch.quantile (MONAI) interpolates in float32: up to ~1e-5 off numpy.percentile, which we match
        np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=2e-5)
        np.testing.assert_allclose(out.affine.numpy(), expected.affine.numpy(), atol=1e-9)
        self.assertEqual(out.meta.get(PHOTOMETRIC_TAG), expected.meta.get(PHOTOMETRIC_TAG))
        self.assertEqual(out.meta["filename_or_obj"], "f.png")
        self.assertTrue(torch.equal(image.affine, affine))  # the input is left alone
        unpadded = PrepareRadiograph(size, lower, upper, pad=False)(image)
        self.assertEqual(max(unpadded.shape[1:]), size)
        self.assertEqual(tuple(unpadded.shape[1:]), PrepareRadiograph(size).resized_shape(shape[1:]))

    def test_prepare_plain_tensor_and_errors(self):
        out = PrepareRadiograph(8)(np.arange(24, dtype=np.float64).reshape(1, 6, 4))
        self.assertIs(type(out), torch.Tensor)
        self.assertEqual(tuple(out.shape), (1, 8, 8))
        self.assertEqual(out.dtype, torch.float32)
        with self.assertRaisesRegex(ValueError, "f.nii.*2-D"):
            PrepareRadiograph(8)(MetaTensor(torch.ones(1, 4, 4, 4), meta={"filename_or_obj": "f.nii"}))
        with self.assertRaisesRegex(ValueError, "image_size"):
            PrepareRadiograph(0)
        with self.assertRaisesRegex(ValueError, "percentile"):
            PrepareRadiograph(8, 50, 50)
        with self.assertRaisesRegex(ValueError, "'film'"):
            PrepareRadiographd("film", 8)({"image": torch.ones(1, 4, 4)})


if __name__ == "__main__":
    unittest.main()
