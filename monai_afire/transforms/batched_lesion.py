"""The Synthetic Lesion Mask for a whole batch on the training device: array and dictionary versions.

:class:`~monai_afire.transforms.RandSyntheticLesion` runs per image in the DataLoader workers and costs about a
third of a worker's time per training-size film (``benchmarks/data_pipeline.py``). This module draws the same lesions
(same distribution of blob count, sizes, positions and amplitudes, same texture, fall-off and clipping) for a batch
(B, C, H, W) in a few tensor operations on the batch's device, so the workers only decode and prepare. Nothing here
waits for the device: no ``.item()``, no data-dependent Python branching, a fixed number of kernels per batch.

The body centre (Otsu threshold on a coarse grid, largest 4-connected region, its centre of mass) is found on the
device too (:func:`body_centres`, the batched twin of :func:`~monai_afire.transforms.find_body_region`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import ensure_tuple_rep

from .synthetic_lesion import LesionOptions, _to_pixels
from .utils import require_keys

__all__ = [
    "LesionBlobs",
    "body_centres",
    "RandSyntheticLesionBatch",
    "RandSyntheticLesionBatchd",
    "RandSyntheticLesionBatchD",
    "RandSyntheticLesionBatchDict",
]


def _otsu_thresholds(values: torch.Tensor, bins: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Otsu's threshold of every row of ``values`` (B, N), as :func:`~monai_afire.transforms.otsu_threshold` computes
    it; returns (thresholds, valid) where ``valid`` is False for constant rows."""
    low = values.min(dim=1, keepdim=True).values
    high = values.max(dim=1, keepdim=True).values
    valid = (high > low)[:, 0]
    width = torch.where(high > low, (high - low) / bins, torch.ones_like(high))
    index = ((values - low) / width).long().clamp_(0, bins - 1)
    hist = torch.zeros(values.shape[0], bins, dtype=values.dtype, device=values.device)
    hist.scatter_add_(1, index, torch.ones_like(values))
    centres = low + width * (torch.arange(bins, device=values.device, dtype=values.dtype) + 0.5)
    weight_low = torch.cumsum(hist, dim=1)[:, :-1]
    weight_high = values.shape[1] - weight_low
    cumulative = torch.cumsum(hist * centres, dim=1)
    empty = (weight_low == 0) | (weight_high == 0)
    mean_low = cumulative[:, :-1] / weight_low.clamp(min=1)
    mean_high = (cumulative[:, -1:] - cumulative[:, :-1]) / weight_high.clamp(min=1)
    between = torch.where(empty, -torch.ones_like(weight_low), weight_low * weight_high * (mean_low - mean_high) ** 2)
    # the middle of a plateau of maxima, as otsu_threshold picks it
    is_max = between == between.max(dim=1, keepdim=True).values
    rank = torch.cumsum(is_max.long(), dim=1)
    middle = is_max.sum(dim=1, keepdim=True) // 2 + 1
    best = torch.argmax((is_max & (rank == middle)).long(), dim=1)
    return low[:, 0] + width[:, 0] * (best + 1).to(values.dtype), valid


def _run_minimum(label: torch.Tensor, foreground: torch.Tensor, background: int) -> torch.Tensor:
    """Give every pixel of each horizontal run of foreground (B, H, W) the smallest label of its run."""
    batch, rows, cols = foreground.shape
    flat = foreground.reshape(batch, rows * cols)
    left = torch.zeros_like(foreground)
    left[:, :, 1:] = foreground[:, :, :-1]
    starts = (foreground & ~left).reshape(batch, rows * cols)
    run = torch.where(flat, torch.cumsum(starts.long(), dim=1), 0)  # runs numbered from 1; 0 collects background
    smallest = torch.full((batch, rows * cols + 1), background, dtype=label.dtype, device=label.device)
    smallest.scatter_reduce_(1, run, label.reshape(batch, rows * cols), reduce="amin")
    spread = torch.gather(smallest, 1, run)
    return torch.where(flat, spread, background).view(batch, rows, cols)


def _largest_region(foreground: torch.Tensor, iterations: int) -> torch.Tensor:
    """The largest 4-connected region of each (B, H, W) boolean map (ties: the region met first in raster order, as
    ``scipy.ndimage.label`` numbers them).

    Every pixel starts with its own index as label; each of the ``iterations`` rounds gives every horizontal and then
    every vertical run of foreground the smallest label in it, then lets each pixel take the label of the pixel its
    label names (pointer jumping). A region is labelled as one after about as many rounds as a path inside it needs
    turns between horizontal and vertical, two or three for a body."""
    batch, rows, cols = foreground.shape
    size = rows * cols
    index = torch.arange(size, device=foreground.device).view(1, rows, cols).expand(batch, rows, cols)
    label = torch.where(foreground, index, size)
    columns = foreground.transpose(1, 2).contiguous()
    for _ in range(iterations):
        label = _run_minimum(label, foreground, size)
        label = _run_minimum(label.transpose(1, 2).contiguous(), columns, size).transpose(1, 2)
        flat = label.reshape(batch, size)
        jumped = torch.gather(flat, 1, flat.clamp(max=size - 1))
        label = torch.where(foreground, torch.minimum(flat, jumped).view(batch, rows, cols), size)
    counts = torch.zeros(batch, size + 1, device=foreground.device, dtype=torch.long)
    counts.scatter_add_(1, label.reshape(batch, size), torch.ones_like(label.reshape(batch, size)))
    largest = torch.argmax(counts[:, :size], dim=1)
    return foreground & (label == largest.view(batch, 1, 1))


def body_centres(images: torch.Tensor, grid_size: int = 64, iterations: int = 12) -> torch.Tensor:
    """The body centre of every image of a batch, on its device, as :func:`~monai_afire.transforms.find_body_region`
    finds it per image: Otsu foreground on a coarse grid of about ``grid_size`` points along the longest axis
    (channels averaged), its largest 4-connected region, that region's centre of mass in full-resolution pixels; the
    image centre for a constant image or when Otsu finds no foreground.

    Args:
        images: (B, C, H, W) finite values.
        grid_size: coarse grid points along the longest spatial axis.
        iterations: rounds of the connected-region search (see :func:`_largest_region`): a region whose paths need
            more turns than that (a spiral, not a body) may be taken as several. Films need 3; random maps at the
            percolation threshold, far more tangled than a body, need up to 24 (12 rounds get 91% of them exactly).

    Returns:
        float tensor (B, 2) of (first, second) spatial coordinates.
    """
    if images.ndim != 4:
        raise ValueError(f"body_centres: expected a batch (B, C, H, W), got shape {tuple(images.shape)}.")
    spatial = images.shape[2:]
    stride = max(1, math.ceil(max(spatial) / grid_size))
    dtype = torch.float64 if images.device.type != "mps" else torch.float32
    coarse = images[:, :, ::stride, ::stride].float().mean(dim=1).to(dtype)  # float32 channel mean, as per image
    batch, rows, cols = coarse.shape
    threshold, valid = _otsu_thresholds(coarse.reshape(batch, -1))
    foreground = (coarse > threshold.view(batch, 1, 1)) & valid.view(batch, 1, 1)
    region = _largest_region(foreground, iterations)
    count = region.sum(dim=(1, 2))
    grid = torch.meshgrid(
        torch.arange(rows, device=images.device, dtype=dtype),
        torch.arange(cols, device=images.device, dtype=dtype),
        indexing="ij",
    )
    found = count > 0
    centres = [
        torch.where(found, (g * region).sum(dim=(1, 2)) / count.clamp(min=1) * stride, (s - 1) / 2.0)
        for g, s in zip(grid, spatial)
    ]  # Python scalars, not host tensors: nothing is copied to the device
    return torch.stack(centres, dim=1).float()


@dataclass
class LesionBlobs:
    """The blobs of a batch, as tensors on its device (K = most blobs per image).

    Attributes:
        active: (B, K) bool, which blobs exist (a lesioned image has 1-4 of them; an image left clean none).
        start: (B, K, 2) long, box corner on each spatial axis.
        size: (B, K, 2) long, box side on each spatial axis.
        amplitude: (B, K) float, peak as a fraction of the texture.
        lesioned: (B,) bool, which images get a lesion (probability ``prob``).
    """

    active: torch.Tensor
    start: torch.Tensor
    size: torch.Tensor
    amplitude: torch.Tensor
    lesioned: torch.Tensor


class RandSyntheticLesionBatch(LesionOptions, RandomizableTransform):
    """The Synthetic Lesion Mask of :class:`~monai_afire.transforms.RandSyntheticLesion` for a batch (B, C, H, W) on
    its device: every image gets its own blobs, drawn from the same distribution with the same arguments and
    defaults (the authors' recipe: blobs inside the image, rectangle fall-off, ceiling over the whole image).

    Random numbers come from a ``torch.Generator`` on the batch's device, seeded by :meth:`set_random_state`, so
    nothing crosses between host and device. For a given draw the mask equals the per-image transform's (tested);
    ``foreground_only`` is not offered. 2-D only.

    Args:
        prob, num_lesions, lesion_size, texture_size, amplitude, ceiling, sigma, placement, falloff, clip_scope: as for
            :class:`~monai_afire.transforms.RandSyntheticLesion`.
        grid_size: coarse grid of the body search (:func:`body_centres`).

    Raises:
        ValueError: on invalid arguments, or on a batch that is not (B, C, H, W), not floating point, or smaller than
            the smallest lesion.
    """

    def __init__(
        self,
        prob: float = 1.0,
        num_lesions: int | tuple[int, int] = (1, 4),
        lesion_size: float | tuple[float, float] = (16 / 224, 128 / 224),
        texture_size: float = 60 / 224,
        amplitude: float | tuple[float, float] = 0.5,
        ceiling: float | None = 235 / 255,
        sigma: float = 0.5,
        placement: str = "inside",
        falloff: str = "rectangle",
        clip_scope: str = "image",
        grid_size: int = 64,
    ) -> None:
        super().__init__(prob)
        self.set_lesion_options(
            num_lesions, lesion_size, texture_size, amplitude, ceiling, sigma, placement, falloff, clip_scope
        )
        self.grid_size = int(grid_size)
        self._seed = int(self.R.randint(2**62))
        self._generators: dict[str, torch.Generator] = {}

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        """Seed the draws (MONAI's signature); the device generators restart from the new seed."""
        super().set_random_state(seed, state)
        self._seed = int(self.R.randint(2**62))
        self._generators = {}
        return self

    def generator(self, device: torch.device) -> torch.Generator:
        """The generator of ``device`` (created on first use from the current seed)."""
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[key]

    def randomize(self, batch_size: int, spatial_shape: Sequence[int], device: torch.device) -> LesionBlobs:  # type: ignore[override]
        """Draw the blobs of a batch: per image whether it is lesioned and how many blobs; per blob its size (each
        axis independently), position and amplitude, as :meth:`RandSyntheticLesion.randomize` draws them."""
        g = self.generator(device)
        lesioned = torch.rand(batch_size, generator=g, device=device) < self.prob
        low, high = self.num_lesions
        count = torch.randint(low, high + 1, (batch_size,), generator=g, device=device)
        slots = max(high, 1)
        active = (torch.arange(slots, device=device) < count.unsqueeze(1)) & lesioned.unsqueeze(1)
        sizes, starts = [], []
        for (lo, hi), side in zip(self.size_range(spatial_shape), spatial_shape):
            size = torch.randint(lo, hi + 1, (batch_size, slots), generator=g, device=device)
            uniform = torch.rand(batch_size, slots, generator=g, device=device)
            if self.placement == "inside":  # the corner uniform among the positions where the blob fits
                size = size.clamp(max=int(side))
                choices = int(side) + 1 - size
                start = torch.minimum((uniform * choices).long(), choices - 1)
            else:  # the centre uniform over the image
                start = (uniform * int(side)).long().clamp(max=int(side) - 1) - size // 2
            sizes.append(size)
            starts.append(start)
        size, start = torch.stack(sizes, dim=-1), torch.stack(starts, dim=-1)
        a0, a1 = self.amplitude
        amplitude = a0 + (a1 - a0) * torch.rand(batch_size, slots, generator=g, device=device)
        return LesionBlobs(active, start, size, amplitude, lesioned)

    def _weights(self, blobs: LesionBlobs, k: int, spatial: Sequence[int], dtype) -> tuple[torch.Tensor, list]:
        """Fall-off weight (B, H, W) of blob ``k`` of every image (0 outside its box and for inactive blobs) and its
        centred coordinates per axis (B, side) for the texture lookup."""
        device = blobs.start.device
        axes, gauss_low, gauss_high, inside = [], [], [], []
        for axis, side in enumerate(spatial):
            z = blobs.size[:, k, axis].to(dtype).unsqueeze(1)
            local = torch.arange(side, device=device, dtype=dtype).unsqueeze(0) - blobs.start[:, k, axis].to(
                dtype
            ).unsqueeze(1)
            half = z / 2
            # as the per-image transform computes it: the two ends of the box are exact mirror images, so the
            # rectangle fall-off is exactly 0 at all four corners (and this is also the texture lookup coordinate)
            centred = (local + 0.5 - half) / half
            axes.append(centred)
            inside.append((local >= 0) & (local < z))
            # extremes of the Gaussian over the box's pixel centres: the end pixels and the middle one(s)
            gauss_low.append(torch.exp(-0.5 * (((0.5 - half) / half) / self.sigma) ** 2))
            odd = torch.remainder(blobs.size[:, k, axis], 2).unsqueeze(1) == 1
            middle = torch.exp(-0.5 * ((0.5 / half) / self.sigma) ** 2)
            gauss_high.append(torch.where(odd, torch.ones_like(z), middle))
        gauss = [torch.exp(-0.5 * (c / self.sigma) ** 2) for c in axes]
        product = gauss[0].unsqueeze(2) * gauss[1].unsqueeze(1)
        box = inside[0].unsqueeze(2) & inside[1].unsqueeze(1) & blobs.active[:, k].view(-1, 1, 1)
        if self.falloff == "rectangle":
            low = (gauss_low[0] * gauss_low[1]).unsqueeze(2)
            high = (gauss_high[0] * gauss_high[1]).unsqueeze(2)
            span = high - low
            weight = torch.where(span > 0, (product - low) / torch.where(span > 0, span, 1.0), 1.0).clamp(min=0.0)
        else:
            edge = math.exp(-0.5 / self.sigma**2)
            weight = ((product - edge) / (1.0 - edge)).clamp(min=0.0)
        return torch.where(box, weight, 0.0), axes

    def textures(self, images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """The texture patch (B, C, t, t') of every image around its centre, kept inside the image, negatives as 0."""
        spatial = images.shape[2:]
        sides = [min(_to_pixels(self.texture_size, s), s) for s in spatial]
        index = []
        for axis, (side, s) in enumerate(zip(sides, spatial)):
            begin = torch.round(centres[:, axis] - side / 2).long().clamp(min=0).clamp(max=s - side)
            index.append(begin.unsqueeze(1) + torch.arange(side, device=images.device))
        batch = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
        patch = images[batch, :, index[0].unsqueeze(2), index[1].unsqueeze(1)]  # (B, t, t', C)
        return patch.permute(0, 3, 1, 2).clamp(min=0.0)

    def lesion_mask(
        self, images: torch.Tensor, blobs: LesionBlobs, centres: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The lesion masks M (B, C, H, W) of ``blobs`` for a floating-point batch.

        Args:
            images: (B, C, H, W).
            blobs: drawn by :meth:`randomize`.
            centres: (B, 2) body centres; found with :func:`body_centres` when None.
        """
        spatial = images.shape[2:]
        if centres is None:
            centres = body_centres(images, self.grid_size)
        texture = self.textures(images, centres)
        mask = torch.zeros_like(images)
        for k in range(blobs.active.shape[1]):
            weight, axes = self._weights(blobs, k, spatial, images.dtype)
            # bilinear resize of the texture to the box (align_corners=False) = sampling at the centred coordinates,
            # which run from -1 to 1 over the box as grid_sample's normalised coordinates do
            grid = torch.stack(torch.broadcast_tensors(axes[1].unsqueeze(1), axes[0].unsqueeze(2)), dim=-1)
            patch = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
            mask = mask + (blobs.amplitude[:, k].view(-1, 1, 1, 1) * weight.unsqueeze(1)) * patch
        return mask

    def _check(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(
                f"RandSyntheticLesionBatch: expected a batch tensor (B, C, H, W), got "
                f"{tuple(images.shape) if hasattr(images, 'shape') else type(images).__name__}."
            )
        if not images.is_floating_point():
            raise ValueError(f"RandSyntheticLesionBatch: expected floating-point images in [0, 1], got {images.dtype}.")
        smallest = [low for low, _ in self.size_range(images.shape[2:])]
        if images.numel() == 0 or any(low > s for low, s in zip(smallest, images.shape[2:])):
            raise ValueError(
                f"RandSyntheticLesionBatch: the images (spatial shape {tuple(images.shape[2:])}) are empty or smaller "
                f"than the smallest lesion ({smallest} pixels from lesion_size={self.lesion_size})."
            )

    def __call__(  # type: ignore[override]
        self, images: torch.Tensor, return_mask: bool = False, blobs: LesionBlobs | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Lesion a batch of clean images (B, C, H, W) in [0, 1] on their device.

        Args:
            images: the clean batch.
            return_mask: also return the masks.
            blobs: blobs to draw (from :meth:`randomize`); new ones are drawn when None.

        Returns:
            the lesioned batch, or (lesioned batch, masks) with ``return_mask``; images left clean (probability
            ``1 - prob``) are returned unchanged with an all-zero mask.
        """
        self._check(images)
        images = images.as_tensor() if hasattr(images, "as_tensor") else images
        if blobs is None:
            blobs = self.randomize(images.shape[0], images.shape[2:], images.device)
        mask = self.lesion_mask(images, blobs)
        out = torch.clamp(images + mask, 0.0, self.ceiling)
        keep = ~blobs.lesioned.view(-1, 1, 1, 1)
        if self.clip_scope == "lesion":
            keep = keep | (mask <= 0)
        out = torch.where(keep, images, out)
        return (out, mask) if return_mask else out


class RandSyntheticLesionBatchd(RandomizableTransform, MapTransform):
    """Dictionary version of :class:`RandSyntheticLesionBatch` for a collated batch: for each key (a clean batch
    (B, C, H, W)), the lesioned batch goes under the key, the clean batch under ``clean_key`` and the masks under
    ``mask_key``: the keys :class:`~monai_afire.transforms.RandSyntheticLesiond` writes per image, so the trainer
    reads the batch as before. Several keys share the blobs (they must have the same shape), each gives its texture.
    Apply it to the batch on the training device (e.g. in the engine's ``prepare_batch``) and drop
    ``RandSyntheticLesiond`` from the DataLoader's transforms.

    Args:
        keys: key(s) of the clean batches.
        clean_key: where to put the clean batch; one name per key.
        mask_key: where to put the masks; one name per key.
        lesion_kwargs: arguments of :class:`RandSyntheticLesionBatch`.
        allow_missing_keys: do not raise when a key is missing.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        clean_key: str | Sequence[str] = "clean",
        mask_key: str | Sequence[str] = "lesion_mask",
        allow_missing_keys: bool = False,
        **lesion_kwargs,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, 1.0)
        self.clean_keys = ensure_tuple_rep(clean_key, len(self.keys))
        self.mask_keys = ensure_tuple_rep(mask_key, len(self.keys))
        outputs = list(self.clean_keys) + list(self.mask_keys)
        if len(set(outputs)) != len(outputs) or set(outputs) & set(self.keys):
            raise ValueError(
                f"RandSyntheticLesionBatchd: keys {self.keys}, clean_key {self.clean_keys} and mask_key "
                f"{self.mask_keys} must all be different."
            )
        self.lesion = RandSyntheticLesionBatch(**lesion_kwargs)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.lesion.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if not self.allow_missing_keys:
            require_keys("RandSyntheticLesionBatchd", self.keys, d)
        blobs, shape = None, None
        for key, clean_key, mask_key in self.key_iterator(d, self.clean_keys, self.mask_keys):
            images = d[key]
            try:
                if blobs is None:  # several keys share the blobs, each gives its own texture
                    self.lesion._check(images)
                    shape = tuple(images.shape)
                    blobs = self.lesion.randomize(shape[0], shape[2:], images.device)
                elif (tuple(images.shape[:1]) + tuple(images.shape[2:])) != (shape[:1] + shape[2:]):
                    raise ValueError(
                        f"expected {shape[0]} images of spatial shape {shape[2:]} as under the first key, got "
                        f"{tuple(images.shape)}."
                    )
                lesioned, mask = self.lesion(images, return_mask=True, blobs=blobs)
            except ValueError as e:
                raise ValueError(f"RandSyntheticLesionBatchd, key '{key}': {e}") from e
            d[clean_key], d[key], d[mask_key] = images, lesioned, mask
        return d


RandSyntheticLesionBatchD = RandSyntheticLesionBatchDict = RandSyntheticLesionBatchd
