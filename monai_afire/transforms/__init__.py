"""MONAI transforms of monai-afire: the Synthetic Lesion Mask and radiograph preparation."""

from __future__ import annotations

from .body_region import BodyRegion, find_body_region, otsu_threshold
from .intensity import (
    ScaleIntensityPercentiles,
    ScaleIntensityPercentilesD,
    ScaleIntensityPercentilesd,
    ScaleIntensityPercentilesDict,
    percentiles,
)
from .radiograph import (
    PHOTOMETRIC_TAG,
    InvertMonochrome1,
    InvertMonochrome1D,
    InvertMonochrome1d,
    InvertMonochrome1Dict,
    LoadRadiograph,
    LoadRadiographD,
    LoadRadiographd,
    LoadRadiographDict,
    PrepareRadiograph,
    PrepareRadiographD,
    PrepareRadiographd,
    PrepareRadiographDict,
    RadiographDicomReader,
    ToGrayscale,
    ToGrayscaleD,
    ToGrayscaled,
    ToGrayscaleDict,
    radiograph_transforms,
)
from .synthetic_lesion import (
    LesionBlob,
    RandSyntheticLesion,
    RandSyntheticLesionD,
    RandSyntheticLesiond,
    RandSyntheticLesionDict,
)
from .tokens import patch_labels

__all__ = [
    "BodyRegion",
    "InvertMonochrome1",
    "InvertMonochrome1D",
    "InvertMonochrome1Dict",
    "InvertMonochrome1d",
    "LesionBlob",
    "LoadRadiograph",
    "LoadRadiographD",
    "LoadRadiographDict",
    "LoadRadiographd",
    "PHOTOMETRIC_TAG",
    "PrepareRadiograph",
    "PrepareRadiographD",
    "PrepareRadiographDict",
    "PrepareRadiographd",
    "RadiographDicomReader",
    "RandSyntheticLesion",
    "RandSyntheticLesionD",
    "RandSyntheticLesionDict",
    "RandSyntheticLesiond",
    "ScaleIntensityPercentiles",
    "ScaleIntensityPercentilesD",
    "ScaleIntensityPercentilesDict",
    "ScaleIntensityPercentilesd",
    "ToGrayscale",
    "ToGrayscaleD",
    "ToGrayscaleDict",
    "ToGrayscaled",
    "find_body_region",
    "otsu_threshold",
    "patch_labels",
    "percentiles",
    "radiograph_transforms",
]
