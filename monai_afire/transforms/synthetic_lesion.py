"""The Synthetic Lesion Mask (SLM) of AFiRe as MONAI transforms: array and dictionary versions."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, ensure_tuple_rep

from .body_region import BodyRegion, find_body_region
from .utils import require_keys

__all__ = [
    "LesionBlob",
    "RandSyntheticLesion",
    "RandSyntheticLesiond",
    "RandSyntheticLesionD",
    "RandSyntheticLesionDict",
]

Range = float | tuple[float, float]

#: where blobs may lie: wholly inside the image (authors') or centred anywhere, cut at the border
PLACEMENTS = ("inside", "anywhere")
#: blob weight: Gaussian min-max scaled over the bounding box (authors') or cut at the inscribed ellipse
FALLOFFS = ("rectangle", "ellipse")
#: where the ceiling clips: the whole image (authors') or only the pixels the lesion touches
CLIP_SCOPES = ("image", "lesion")


@dataclass(frozen=True)
class LesionBlob:
    """One blob drawn by :class:`RandSyntheticLesion`.

    Attributes:
        start: index of the blob's bounding box corner on each spatial axis. With ``placement="inside"`` the box lies
            wholly in the image; with ``"anywhere"`` it may start below 0 or run past the image (the blob is cut at
            the border).
        size: bounding box size in pixels on each spatial axis. With ``falloff="rectangle"`` the blob fills the box
            (zero only at its corners); with ``"ellipse"`` it is the ellipse (ellipsoid) inscribed in it.
        amplitude: peak of the blob as a fraction of the texture intensity.
    """

    start: tuple[int, ...]
    size: tuple[int, ...]
    amplitude: float


def _as_range(value: Range, name: str) -> tuple[float, float]:
    low, high = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be a number >= 0 or a range (low, high) with 0 <= low <= high, got {value}.")
    return float(low), float(high)


def _choice(value: str, options: Sequence[str], name: str) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}.")
    return value


def _to_pixels(value: float, side: int) -> int:
    """A length below 1 is a fraction of ``side``; 1 or more is a length in pixels."""
    return max(1, int(round(value * side if value < 1 else value)))


class LesionOptions:
    """The lesion options shared by :class:`RandSyntheticLesion` and
    :class:`~monai_afire.transforms.RandSyntheticLesionBatch`: one place that checks and stores them."""

    def set_lesion_options(
        self,
        num_lesions: int | tuple[int, int],
        lesion_size: Range,
        texture_size: float,
        amplitude: Range,
        ceiling: float | None,
        sigma: float,
        placement: str,
        falloff: str,
        clip_scope: str,
    ) -> None:
        """Check the options (ValueError naming the bad one) and store them as attributes of the same names."""
        low, high = (num_lesions, num_lesions) if isinstance(num_lesions, int) else tuple(num_lesions)
        if not 0 <= int(low) <= int(high):
            raise ValueError(f"num_lesions must be a range (low, high) with 0 <= low <= high, got {num_lesions}.")
        self.num_lesions = (int(low), int(high))
        self.lesion_size = _as_range(lesion_size, "lesion_size")
        if self.lesion_size[0] <= 0:
            raise ValueError(f"lesion_size must be > 0, got {lesion_size}.")
        if not texture_size > 0:
            raise ValueError(f"texture_size must be > 0, got {texture_size}.")
        if ceiling is not None and not ceiling > 0:
            raise ValueError(f"ceiling must be > 0 or None, got {ceiling}.")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}.")
        self.texture_size = float(texture_size)
        self.amplitude = _as_range(amplitude, "amplitude")
        self.ceiling = None if ceiling is None else float(ceiling)
        self.sigma = float(sigma)
        self.placement = _choice(placement, PLACEMENTS, "placement")
        self.falloff = _choice(falloff, FALLOFFS, "falloff")
        self.clip_scope = _choice(clip_scope, CLIP_SCOPES, "clip_scope")

    def size_range(self, spatial_shape: Sequence[int]) -> list[tuple[int, int]]:
        """Blob side range in pixels along each spatial axis of an image of ``spatial_shape``."""
        return [(_to_pixels(self.lesion_size[0], s), _to_pixels(self.lesion_size[1], s)) for s in spatial_shape]


class RandSyntheticLesion(LesionOptions, RandomizableTransform):
    """Add a synthetic lesion (1-4 textured Gaussian opacities) to a channel-first image, as in AFiRe.

    The lesion mask is M = sum of blobs, each ``amplitude * T * W``: T is a texture patch of side ``texture_size`` cut
    from the same image around the centre of the body (Otsu threshold, largest connected region, its centre of mass;
    the image centre when the image is constant or Otsu finds nothing), resized to the blob's bounding box; W is a
    Gaussian fall-off over the box (width ``sigma`` of the half axes). The output is ``clip(image + M, 0, ceiling)``.
    Only a local opacity is added: anatomy stays where it was.

    The defaults reproduce the authors' code; each of their choices is an option (see the bundle's fidelity table):

    - ``placement="inside"``: every blob lies wholly inside the image (its corner is drawn uniformly among the
      positions where it fits; a blob larger than the image is shrunk to it). ``"anywhere"``: the blob centre is
      drawn anywhere in the image and the blob is cut at the border (the earlier monai-afire default).
    - ``falloff="rectangle"``: W is the Gaussian min-max scaled over the pixels of the box, 1 at the centre and 0
      only at the box corners, so the blob fills its rectangle. ``"ellipse"``: W falls to 0 on the inscribed
      ellipse (ellipsoid) and stays 0 outside it (the earlier monai-afire default).
    - ``clip_scope="image"``: ``clip(image + M, 0, ceiling)`` over the whole image, so pixels above ``ceiling``
      are lowered far from any lesion too (20.8% of the pixels of the real film ``RG1_UNCR.dcm`` prepared at 224 lie
      above 235/255, see ``benchmarks/lesion_statistics.py``). ``"lesion"``: the clip applies only where ``M > 0``;
      every other pixel is left exactly as it was.

    Lengths (``lesion_size``, ``texture_size``) below 1 are fractions of the image side along each spatial axis;
    lengths of 1 or more are absolute pixels. The defaults follow the paper at 224 x 224 (blobs of 16-128 pixels,
    texture 60 pixels) and scale with the image.

    Works on (C, H, W) and (C, H, W, D) numpy arrays, tensors and MetaTensors (metadata kept); the output is floating
    point (float32 unless the input is float64). The intensity is expected in [0, 1] (see ``radiograph_transforms``);
    negative texture values count as 0 so that M >= 0.

    Args:
        prob: probability of adding a lesion; otherwise the input is returned unchanged (and the mask is all zero).
            ``prob=0`` gives clean input to student and teacher alike ("no synthetic lesions").
        num_lesions: inclusive range (low, high) of the number of blobs, or one number.
        lesion_size: range of each blob's bounding-box side, drawn independently per spatial axis.
        texture_size: side of the texture patch cut around the body centre.
        amplitude: peak of a blob as a fraction of the texture (one number, or a range drawn per blob).
        ceiling: upper clip of the output (235/255 in the paper); None clips only at 0.
        sigma: width of the Gaussian fall-off relative to the blob's half axes (0.5 in the authors' code).
        foreground_only: draw blob centres only on the body foreground (anywhere when no body is found); with
            ``placement="inside"`` a blob that would cross the border is then shifted into the image.
        placement: ``"inside"`` (authors') or ``"anywhere"``, see above.
        falloff: ``"rectangle"`` (authors') or ``"ellipse"``, see above.
        clip_scope: ``"image"`` (authors') or ``"lesion"``, see above.

    Raises:
        ValueError: on invalid arguments, on an input that is empty, not finite, not (C, H, W[, D]), or smaller than
            the smallest lesion.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        prob: float = 1.0,
        num_lesions: int | tuple[int, int] = (1, 4),
        lesion_size: Range = (16 / 224, 128 / 224),
        texture_size: float = 60 / 224,
        amplitude: Range = 0.5,
        ceiling: float | None = 235 / 255,
        sigma: float = 0.5,
        foreground_only: bool = False,
        placement: str = "inside",
        falloff: str = "rectangle",
        clip_scope: str = "image",
    ) -> None:
        super().__init__(prob)
        self.set_lesion_options(
            num_lesions, lesion_size, texture_size, amplitude, ceiling, sigma, placement, falloff, clip_scope
        )
        self.foreground_only = foreground_only
        self._blobs: tuple[LesionBlob, ...] = ()
        self._shape: tuple[int, ...] | None = None

    @property
    def blobs(self) -> tuple[LesionBlob, ...]:
        """The blobs drawn by the last :meth:`randomize` (empty when no lesion was added)."""
        return self._blobs if self._do_transform else ()

    def randomize(self, spatial_shape: Sequence[int], body: BodyRegion | None = None) -> None:  # type: ignore[override]
        """Draw whether to add a lesion and, if so, the number, size, position and amplitude of its blobs.

        Args:
            spatial_shape: spatial shape of the image.
            body: body region of the image; used only with ``foreground_only``.
        """
        super().randomize(None)
        self._shape = tuple(int(s) for s in spatial_shape)
        self._blobs = ()
        if not self._do_transform:
            return
        sizes = self.size_range(self._shape)
        points = None
        if self.foreground_only and body is not None and body.foreground is not None:
            points = np.argwhere(body.foreground)
        blobs = []
        inside = self.placement == "inside"
        for _ in range(self.R.randint(self.num_lesions[0], self.num_lesions[1] + 1)):
            size = tuple(int(self.R.randint(low, high + 1)) for low, high in sizes)
            if inside:
                size = tuple(min(z, s) for z, s in zip(size, self._shape))
            if points is not None:
                point = points[self.R.randint(len(points))]
                centre = [
                    min(int(p) * body.stride + int(self.R.randint(body.stride)), s - 1)  # type: ignore[union-attr]
                    for p, s in zip(point, self._shape)
                ]
                start = tuple(c - z // 2 for c, z in zip(centre, size))
                if inside:
                    start = tuple(min(max(b, 0), s - z) for b, z, s in zip(start, size, self._shape))
            elif inside:
                start = tuple(int(self.R.randint(0, s - z + 1)) for z, s in zip(size, self._shape))
            else:
                start = tuple(int(self.R.randint(0, s)) - z // 2 for z, s in zip(size, self._shape))
            blobs.append(LesionBlob(start, size, float(self.R.uniform(*self.amplitude))))
        self._blobs = tuple(blobs)

    def __call__(  # type: ignore[override]
        self, img: NdarrayOrTensor, randomize: bool = True, return_mask: bool = False
    ) -> NdarrayOrTensor | tuple[NdarrayOrTensor, NdarrayOrTensor]:
        """Add a synthetic lesion to ``img``.

        Args:
            img: channel-first image (C, H, W) or (C, H, W, D).
            randomize: draw new blobs; False reuses the last ones (the image must have the same spatial shape).
            return_mask: also return the lesion mask M (same shape and type as the output).

        Returns:
            the lesioned image, or (lesioned image, mask) with ``return_mask``.
        """
        data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
        self._check(data)
        if data.dtype not in (torch.float32, torch.float64):
            data = data.float()
        body = None
        if randomize:
            body = find_body_region(data.detach().cpu().numpy()) if self.foreground_only else None
            self.randomize(data.shape[1:], body)
        elif self._shape != tuple(data.shape[1:]):
            raise ValueError(
                f"RandSyntheticLesion: randomize=False needs an image of the last spatial shape {self._shape}, "
                f"got {tuple(data.shape[1:])}."
            )
        if not self._do_transform:
            if not return_mask:
                return img
            return img, convert_to_dst_type(torch.zeros_like(data), img, dtype=data.dtype)[0]
        mask = self.lesion_mask(data, body)
        out = torch.clamp(data + mask, 0.0, self.ceiling)
        if self.clip_scope == "lesion":
            out = torch.where(mask > 0, out, data)
        out_img = convert_to_dst_type(out, img, dtype=out.dtype)[0]
        if not return_mask:
            return out_img
        return out_img, convert_to_dst_type(mask, img, dtype=mask.dtype)[0]

    def lesion_mask(self, data: torch.Tensor, body: BodyRegion | None = None) -> torch.Tensor:
        """The lesion mask M of the current blobs for a floating-point channel-first tensor ``data``.

        Args:
            data: the image, (C, H, W) or (C, H, W, D).
            body: its body region (found here when None); the texture is cut around its centre.
        """
        spatial = data.shape[1:]
        if body is None:
            body = find_body_region(data.detach().cpu().numpy())
        texture = self._texture(data, body.centre)
        mask = torch.zeros_like(data)
        mode = "bilinear" if len(spatial) == 2 else "trilinear"
        for blob in self._blobs:
            region = tuple(slice(max(b, 0), min(b + z, s)) for b, z, s in zip(blob.start, blob.size, spatial))
            if any(r.start >= r.stop for r in region):
                continue
            crop = tuple(slice(r.start - b, r.stop - b) for r, b in zip(region, blob.start))
            patch = F.interpolate(texture[None], size=blob.size, mode=mode, align_corners=False)[0]
            weight = self._falloff(blob, crop)
            weight = torch.from_numpy(weight).to(device=data.device, dtype=data.dtype)
            mask[(slice(None),) + region] += (blob.amplitude * weight) * patch[(slice(None),) + crop]
        return mask

    def _falloff(self, blob: LesionBlob, crop: Sequence[slice]) -> np.ndarray:
        """Gaussian weight of ``blob`` over the ``crop`` of its bounding box, 1 at the centre.

        ``"rectangle"``: the separable Gaussian min-max scaled over all pixels of the box (its extremes are the
        products of the per-axis extremes), so it is 0 only at the box corners. ``"ellipse"``: shifted and scaled to
        fall to 0 on the inscribed ellipse (ellipsoid), and 0 outside it.
        """
        falloff = np.ones((1,) * len(crop), dtype=np.float64)
        low = high = 1.0
        for axis, (z, c) in enumerate(zip(blob.size, crop)):
            centred = (np.arange(z) + 0.5 - z / 2) / (z / 2)
            gauss = np.exp(-0.5 * (centred / self.sigma) ** 2)
            low, high = low * float(gauss.min()), high * float(gauss.max())
            shape = [1] * len(crop)
            shape[axis] = -1
            falloff = falloff * gauss[c].reshape(shape)
        if self.falloff == "rectangle":
            if high - low <= 0:  # a one-pixel box: nothing to scale
                return np.ones_like(falloff)
            return (falloff - low) / (high - low)
        edge = math.exp(-0.5 / self.sigma**2)
        return np.maximum((falloff - edge) / (1.0 - edge), 0.0)

    def _texture(self, data: torch.Tensor, centre: Sequence[float]) -> torch.Tensor:
        """The texture patch (C, *texture side) around ``centre``, kept inside the image, negative values as 0."""
        window = []
        for c, s in zip(centre, data.shape[1:]):
            side = min(_to_pixels(self.texture_size, s), s)
            begin = min(max(int(round(c - side / 2)), 0), s - side)
            window.append(slice(begin, begin + side))
        return torch.clamp(data[(slice(None),) + tuple(window)], min=0.0)

    def _check(self, data: torch.Tensor) -> None:
        if data.ndim not in (3, 4):
            raise ValueError(
                f"RandSyntheticLesion: expected a channel-first image (C, H, W) or (C, H, W, D), "
                f"got shape {tuple(data.shape)}."
            )
        if data.numel() == 0:
            raise ValueError(f"RandSyntheticLesion: the image is empty (shape {tuple(data.shape)}).")
        # a finite sum proves every value finite; only a non-finite sum needs the full check
        if data.is_floating_point() and not math.isfinite(float(data.sum())) and not bool(torch.isfinite(data).all()):
            raise ValueError("RandSyntheticLesion: the image contains NaN or infinite values; expected finite values.")
        smallest = [low for low, _ in self.size_range(data.shape[1:])]
        if any(low > s for low, s in zip(smallest, data.shape[1:])):
            raise ValueError(
                f"RandSyntheticLesion: the image (spatial shape {tuple(data.shape[1:])}) is smaller than the smallest "
                f"lesion ({smallest} pixels from lesion_size={self.lesion_size})."
            )


class RandSyntheticLesiond(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandSyntheticLesion`: lesioned image, clean copy and lesion mask.

    For each key (the image), the output dictionary holds the lesioned image under the key, the unchanged input
    under ``clean_key`` and the float lesion mask (>= 0, same shape and type as the image, zero where nothing was
    added) under ``mask_key``. With probability ``1 - prob`` the image is left as it is and the mask is all zero.
    Several keys share the blob positions and sizes (they must have the same spatial shape); each image gives its own
    texture.

    Args:
        keys: key(s) of the image(s) to lesion.
        clean_key: where to put the unchanged input; one name per key.
        mask_key: where to put the lesion mask; one name per key.
        prob: probability of adding a lesion.
        num_lesions, lesion_size, texture_size, amplitude, ceiling, sigma, foreground_only, placement, falloff,
            clip_scope: see :class:`RandSyntheticLesion` (lengths below 1 are fractions of the image side, 1 or more
            are pixels; the defaults reproduce the authors' code).
        allow_missing_keys: do not raise when a key is missing.

    Raises:
        ValueError: when a key is missing (and ``allow_missing_keys`` is False), when an output key repeats an input
            key, or on bad images (see :class:`RandSyntheticLesion`); the message names the key.
    """

    backend = RandSyntheticLesion.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        clean_key: str | Sequence[str] = "clean",
        mask_key: str | Sequence[str] = "lesion_mask",
        prob: float = 1.0,
        num_lesions: int | tuple[int, int] = (1, 4),
        lesion_size: Range = (16 / 224, 128 / 224),
        texture_size: float = 60 / 224,
        amplitude: Range = 0.5,
        ceiling: float | None = 235 / 255,
        sigma: float = 0.5,
        foreground_only: bool = False,
        placement: str = "inside",
        falloff: str = "rectangle",
        clip_scope: str = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.clean_keys = ensure_tuple_rep(clean_key, len(self.keys))
        self.mask_keys = ensure_tuple_rep(mask_key, len(self.keys))
        outputs = list(self.clean_keys) + list(self.mask_keys)
        if len(set(outputs)) != len(outputs) or set(outputs) & set(self.keys):
            raise ValueError(
                f"RandSyntheticLesiond: keys {self.keys}, clean_key {self.clean_keys} and mask_key {self.mask_keys} "
                "must all be different."
            )
        self.lesion = RandSyntheticLesion(
            prob=1.0,
            num_lesions=num_lesions,
            lesion_size=lesion_size,
            texture_size=texture_size,
            amplitude=amplitude,
            ceiling=ceiling,
            sigma=sigma,
            foreground_only=foreground_only,
            placement=placement,
            falloff=falloff,
            clip_scope=clip_scope,
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.lesion.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if not self.allow_missing_keys:
            require_keys("RandSyntheticLesiond", self.keys, d)
        self.randomize(None)
        first = True
        for key, clean_key, mask_key in self.key_iterator(d, self.clean_keys, self.mask_keys):
            img = d[key]
            if not self._do_transform:
                data_t = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
                d[clean_key] = img
                d[mask_key] = convert_to_dst_type(torch.zeros(data_t.shape), img, dtype=torch.float32)[0]
                continue
            try:
                lesioned, mask = self.lesion(img, randomize=first, return_mask=True)
            except ValueError as e:
                raise ValueError(f"RandSyntheticLesiond, key '{key}': {e}") from e
            first = False
            d[clean_key], d[key], d[mask_key] = img, lesioned, mask
        return d


RandSyntheticLesionD = RandSyntheticLesionDict = RandSyntheticLesiond
