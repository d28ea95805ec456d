"""Turn radiograph files (DICOM, PNG/JPEG 8- or 16-bit, NIfTI) into model input, with MONAI readers and transforms.

MONAI loads and resizes; this module adds only what MONAI lacks for plain films: a DICOM reader that keeps the
Photometric Interpretation, inversion of MONOCHROME1 films, RGB to one channel, and checks with clear errors.
Images follow MONAI's reader convention: the first spatial axis runs along the film's width (as in ITK), so
``image[0].T`` displays upright with matplotlib.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import ImageReader, MetaTensor, NibabelReader, PILReader, PydicomReader
from monai.transforms import (
    Compose,
    LoadImage,
    MapTransform,
    Resized,
    ScaleIntensityRangePercentilesd,
    SpatialPadd,
    Transform,
)
from monai.utils import MetaKeys, TransformBackends, convert_to_dst_type

from monai_afire.utils.quiet import nvimgcodec_notice_silenced

from .utils import require_keys

__all__ = [
    "PHOTOMETRIC_TAG",
    "RadiographDicomReader",
    "LoadRadiograph",
    "LoadRadiographd",
    "LoadRadiographD",
    "LoadRadiographDict",
    "InvertMonochrome1",
    "InvertMonochrome1d",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "ToGrayscale",
    "ToGrayscaled",
    "ToGrayscaleD",
    "ToGrayscaleDict",
    "radiograph_transforms",
]

PHOTOMETRIC_TAG = "00280004"
"""Metadata key of the DICOM Photometric Interpretation, in the DICOM JSON form MONAI's PydicomReader uses."""

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
LUMINANCE = (0.299, 0.587, 0.114)


def _source(img: NdarrayOrTensor) -> str:
    """The file an image came from, for error messages."""
    if isinstance(img, MetaTensor):
        return str(img.meta.get("filename_or_obj", "<no file name>"))
    return "<array without metadata>"


def _pil_to_supported_mode(image):
    """Convert PIL images in palette, bilevel or colour-space modes to L or RGB; keep the others (L, I;16, RGB...)."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    return image


class RadiographDicomReader(PydicomReader):
    """MONAI's ``PydicomReader`` (which applies Rescale Slope/Intercept) that also keeps the Photometric
    Interpretation in the metadata under :data:`PHOTOMETRIC_TAG`, so that MONOCHROME1 films can be inverted, while
    still pruning the rest of the header; colour files (RGB, YBR) get their samples as channels, not as a third
    spatial axis."""

    def get_data(self, data) -> tuple[np.ndarray, dict]:
        array, meta = super().get_data(data)
        photometric = (meta.get(PHOTOMETRIC_TAG, {}).get("Value") or [""])[0]
        colour = not str(photometric).startswith("MONOCHROME") and str(photometric) != "PALETTE COLOR"
        if colour and self.channel_dim is None and array.ndim == 3 and array.shape[-1] in (3, 4):
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = -1
            meta[MetaKeys.SPATIAL_SHAPE] = np.asarray(array.shape[:-1])
        return array, meta

    def _get_meta_dict(self, img) -> dict:
        meta = super()._get_meta_dict(img)
        photometric = getattr(img, "PhotometricInterpretation", None)
        if photometric is not None:
            meta[PHOTOMETRIC_TAG] = {"vr": "CS", "Value": [str(photometric)]}
        return meta


class LoadRadiograph(Transform):
    """Load one radiograph file as a float32 (C, W, H) MetaTensor with MONAI's readers.

    The reader is chosen by the file name: PIL for PNG/JPEG/BMP/TIFF (8- and 16-bit; palette and bilevel images become
    L or RGB), NiBabel for ``.nii``/``.nii.gz``, :class:`RadiographDicomReader` for everything else (DICOM, with or
    without a ``.dcm`` suffix). Trailing singleton spatial axes (a NIfTI film stored as (W, H, 1)) are dropped.

    Raises:
        RuntimeError: when the file cannot be read (missing, not an image, DICOM without pixel data), naming the file.
        ValueError: when the image is empty, not 2-D, or has NaN/infinite pixels, naming the file.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self) -> None:
        with nvimgcodec_notice_silenced():  # LoadImage builds every MONAI reader, nvImageCodec's too
            self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype="float32")
        self.pil = PILReader(converter=_pil_to_supported_mode)
        self.nifti = NibabelReader()
        self.dicom = RadiographDicomReader()

    def reader_for(self, filename: str) -> ImageReader:
        """The reader used for ``filename``."""
        name = filename.lower()
        if name.endswith(PIL_SUFFIXES):
            return self.pil
        if name.endswith(NIFTI_SUFFIXES):
            return self.nifti
        return self.dicom

    def __call__(self, filename: str | os.PathLike) -> MetaTensor:
        filename = os.fspath(filename)
        if not os.path.isfile(filename):
            raise RuntimeError(f"LoadRadiograph: no such file: {filename}.")
        reader = self.reader_for(filename)
        try:
            with warnings.catch_warnings():
                # projection radiographs have no patient orientation; MONAI's identity affine is right for them
                warnings.filterwarnings("ignore", message=".*ImageOrientationPatient.*")
                img = self.loader(filename, reader=reader)
        except Exception as e:
            raise RuntimeError(
                f"LoadRadiograph: cannot read {filename} with {type(reader).__name__} "
                f"(expected a DICOM, PNG/JPEG or NIfTI radiograph): {type(e).__name__}: {e}"
            ) from e
        while img.ndim > 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim != 3:
            raise ValueError(
                f"LoadRadiograph: {filename} is not a 2-D image: got shape {tuple(img.shape)} after loading, "
                "expected (channels, width, height)."
            )
        if img.numel() == 0:
            raise ValueError(f"LoadRadiograph: {filename} has no pixels (shape {tuple(img.shape)}).")
        if not bool(torch.isfinite(img.as_tensor()).all()):
            raise ValueError(f"LoadRadiograph: {filename} contains NaN or infinite pixels; expected finite values.")
        return img


class InvertMonochrome1(Transform):
    """Invert a MONOCHROME1 film (bright air) so that, as in MONOCHROME2, air is dark and bone bright.

    The Photometric Interpretation is read from the MetaTensor's metadata (:data:`PHOTOMETRIC_TAG` as written by
    :class:`RadiographDicomReader`, or a plain ``"PhotometricInterpretation"`` entry). An inverted image keeps its value
    range (``min + max - x``) and its metadata is updated to MONOCHROME2, so applying the transform twice is safe.
    Images without that metadata (PNG, JPEG, NIfTI, arrays) are returned unchanged.
    """

    backend = [TransformBackends.TORCH]

    @staticmethod
    def photometric_interpretation(img: NdarrayOrTensor) -> str | None:
        """The Photometric Interpretation recorded in ``img``'s metadata, or None."""
        if not isinstance(img, MetaTensor):
            return None
        entry = img.meta.get(PHOTOMETRIC_TAG, img.meta.get("PhotometricInterpretation"))
        if isinstance(entry, Mapping):
            entry = (entry.get("Value") or [None])[0]
        elif isinstance(entry, (list, tuple)):
            entry = entry[0] if entry else None
        return None if entry is None else str(entry).strip().upper()

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        if self.photometric_interpretation(img) != "MONOCHROME1":
            return img
        assert isinstance(img, MetaTensor)
        if img.numel() == 0:
            raise ValueError(f"InvertMonochrome1: {_source(img)} has no pixels.")
        out = img.max() + img.min() - img
        out.meta[PHOTOMETRIC_TAG] = {"vr": "CS", "Value": ["MONOCHROME2"]}
        out.meta.pop("PhotometricInterpretation", None)
        return out


class ToGrayscale(Transform):
    """Reduce a channel-first image to one channel: RGB(A) by luminance (ITU-R BT.601 weights), grey + alpha by
    its grey channel; a one-channel image is returned unchanged.

    Raises:
        ValueError: for a channel count other than 1-4, naming the file.
    """

    backend = [TransformBackends.TORCH]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        channels = img.shape[0]
        if channels == 1:
            return img
        if channels == 2:
            return img[:1]
        if channels in (3, 4):
            weights = torch.as_tensor(LUMINANCE, dtype=torch.float32).reshape((3,) + (1,) * (img.ndim - 1))
            data = img[:3].as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img[:3])
            gray = (data.float() * weights).sum(0, keepdim=True)
            return convert_to_dst_type(gray, img, dtype=gray.dtype)[0]
        raise ValueError(
            f"ToGrayscale: {_source(img)} has {channels} channels; expected 1 (grey), 2 (grey, alpha), 3 (RGB) or "
            "4 (RGBA)."
        )


class _ArrayTransformd(MapTransform):
    """Apply an array transform to every key, naming the key in errors."""

    def __init__(self, transform: Transform, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if not self.allow_missing_keys:
            require_keys(type(self).__name__, self.keys, d)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class LoadRadiographd(_ArrayTransformd):
    """Dictionary version of :class:`LoadRadiograph`: replaces each key's file path by the loaded image."""

    backend = LoadRadiograph.backend

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(LoadRadiograph(), keys, allow_missing_keys)


class InvertMonochrome1d(_ArrayTransformd):
    """Dictionary version of :class:`InvertMonochrome1`."""

    backend = InvertMonochrome1.backend

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(InvertMonochrome1(), keys, allow_missing_keys)


class ToGrayscaled(_ArrayTransformd):
    """Dictionary version of :class:`ToGrayscale`."""

    backend = ToGrayscale.backend

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False) -> None:
        super().__init__(ToGrayscale(), keys, allow_missing_keys)


def radiograph_transforms(
    image_size: int = 224,
    keys: KeysCollection = ("image",),
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    allow_missing_keys: bool = False,
) -> Compose:
    """The deterministic preparation of radiograph files used by every bundle.

    File path -> :class:`LoadRadiographd` -> :class:`InvertMonochrome1d` -> :class:`ToGrayscaled` -> MONAI
    ``Resized`` (longest side to ``image_size``, aspect kept, ``mode="area"``: pixel averaging, which is
    anti-aliased and fast for films larger than S, nearest-neighbour for smaller ones) -> MONAI
    ``ScaleIntensityRangePercentilesd`` (percentiles to [0, 1], clipped) -> MONAI ``SpatialPadd`` (centred, zero =
    air) giving a (1, image_size, image_size) float32 MetaTensor in [0, 1]. A constant image becomes all zero (MONAI
    warns about the zero range).

    Args:
        image_size: side S of the square output.
        keys: keys of the file paths in the data dictionary.
        lower_percentile: intensity percentile mapped to 0.
        upper_percentile: intensity percentile mapped to 1.
        allow_missing_keys: do not raise when a key is missing.
    """
    if image_size < 1:
        raise ValueError(f"radiograph_transforms: image_size must be >= 1, got {image_size}.")
    if not 0 <= lower_percentile < upper_percentile <= 100:
        raise ValueError(
            f"radiograph_transforms: need 0 <= lower_percentile < upper_percentile <= 100, "
            f"got {lower_percentile}, {upper_percentile}."
        )
    return Compose(
        [
            LoadRadiographd(keys, allow_missing_keys),
            InvertMonochrome1d(keys, allow_missing_keys),
            ToGrayscaled(keys, allow_missing_keys),
            Resized(
                keys,
                spatial_size=image_size,
                size_mode="longest",
                mode="area",
                allow_missing_keys=allow_missing_keys,
            ),
            ScaleIntensityRangePercentilesd(
                keys,
                lower=lower_percentile,
                upper=upper_percentile,
                b_min=0.0,
                b_max=1.0,
                clip=True,
                allow_missing_keys=allow_missing_keys,
            ),
            SpatialPadd(keys, spatial_size=(image_size, image_size), allow_missing_keys=allow_missing_keys),
        ]
    )


LoadRadiographD = LoadRadiographDict = LoadRadiographd
InvertMonochrome1D = InvertMonochrome1Dict = InvertMonochrome1d
ToGrayscaleD = ToGrayscaleDict = ToGrayscaled
