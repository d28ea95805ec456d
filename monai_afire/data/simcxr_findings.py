"""Findings drawn in 3-D inside the phantom's anatomy, each returned as its own projection.

Projection is linear, so a finding that changes attenuation by ``delta_mu`` in a region adds
``sum_y(delta_mu) * spacing`` to the line-integral map. Each function below works on a small
sub-volume around the finding and returns :class:`FindingInstance` objects: the added 2-D line
integral (phantom x, z grid), the 2-D footprint (where the finding is seen) and, optionally, an
anatomy override (e.g. the enlarged heart).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .simcxr_phantom import ANATOMY_LABELS, LOBES, MU_WATER, ChestPhantom

__all__ = ["FINDINGS", "FindingInstance", "FindingSampler"]

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Mass",
    "Nodule",
    "Pneumothorax",
    "Consolidation",
)
"""Findings the simulator draws (ChestX-ray14 names, in ChestX-ray14 order)."""

MU_SOFT = MU_WATER * 1.05
MU_FLUID = MU_WATER * 1.01
_HEART = ANATOMY_LABELS.index("heart")
_BONES = [ANATOMY_LABELS.index(n) for n in ("spine", "ribs", "clavicles", "shoulders")]


@dataclass
class FindingInstance:
    """One drawn instance of a finding (arrays on the phantom's (X, Z) projection grid)."""

    name: str
    delta: np.ndarray
    footprint: np.ndarray
    anatomy_override: tuple[int, np.ndarray] | None = None
    depth: float = 0.0  # antero-posterior position (voxel index along y) of its centre, for patient rotation


class FindingSampler:
    """Draws findings in a :class:`ChestPhantom`. Randomness comes only from the ``rng`` passed in.

    Args:
        phantom: the prepared phantom.
    """

    def __init__(self, phantom: ChestPhantom) -> None:
        self.phantom = phantom
        self.mm = phantom.spacing
        shape = phantom.mu.shape
        self.shape2d = (shape[0], shape[2])
        self.lobe_voxels = [np.argwhere(phantom.lobes == i + 1) for i in range(len(LOBES))]
        mid = shape[0] // 2
        left = np.isin(
            phantom.lobes, [LOBES.index("lung_upper_lobe_left") + 1, LOBES.index("lung_lower_lobe_left") + 1]
        )
        right = (phantom.lobes > 0) & ~left
        self.sides = {"right": right, "left": left}
        self.side_boxes = {k: self._bbox(v) for k, v in self.sides.items()}
        self.heart = phantom.anatomy == _HEART
        self.heart_voxels = np.argwhere(self.heart)
        # lesion centres: lung voxels whose ray stays clear of liver, heart, mediastinum and spine, so the
        # lesion is seen against the lung fields
        self.below = (phantom.anatomy == ANATOMY_LABELS.index("diaphragm_liver")).any(axis=1)
        hidden = np.isin(phantom.anatomy, [ANATOMY_LABELS.index(n) for n in ("heart", "mediastinum", "spine")])
        blocked = self.below | hidden.any(axis=1)
        lung_voxels = np.argwhere(phantom.lung_depth >= 2)
        self.lung_voxels = lung_voxels[~blocked[lung_voxels[:, 0], lung_voxels[:, 2]]]
        self.lung_voxel_depth = phantom.lung_depth[tuple(self.lung_voxels.T)]
        self.midline = mid
        self.draw: dict[str, Callable[[np.random.Generator], list[FindingInstance]]] = {
            "Atelectasis": self.atelectasis,
            "Cardiomegaly": self.cardiomegaly,
            "Effusion": self.effusion,
            "Mass": self.mass,
            "Nodule": self.nodule,
            "Pneumothorax": self.pneumothorax,
            "Consolidation": self.consolidation,
        }

    @staticmethod
    def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
        idx = np.argwhere(mask)
        lo, hi = idx.min(0), idx.max(0) + 1
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def _clip_box(self, centre: np.ndarray, radius: np.ndarray) -> tuple[slice, ...]:
        shape = self.phantom.mu.shape
        lo = np.maximum(np.floor(centre - radius).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def _project(self, name: str, box: tuple[slice, ...], dmu: np.ndarray, region: np.ndarray) -> FindingInstance:
        delta = np.zeros(self.shape2d, dtype=np.float32)
        footprint = np.zeros(self.shape2d, dtype=bool)
        delta[box[0], box[2]] = dmu.sum(axis=1) * self.mm
        footprint[box[0], box[2]] = region.any(axis=1)
        weight = np.abs(dmu).sum(axis=(0, 2))
        depth = box[1].start + float((weight * np.arange(len(weight))).sum() / max(weight.sum(), 1e-12))
        return FindingInstance(name, delta, footprint, depth=depth)

    # ------------------------------------------------------------------ solid lesions

    def _lesion(self, name: str, rng: np.random.Generator, radius_mm: tuple[float, float]) -> FindingInstance:
        radius = rng.uniform(*radius_mm) / self.mm
        need = min(radius * 0.8, float(self.lung_voxel_depth.max()) - 1)
        candidates = self.lung_voxels[self.lung_voxel_depth >= need]
        centre = candidates[rng.integers(len(candidates))].astype(float)
        axes = radius * rng.uniform(0.8, 1.2, size=3)
        box = self._clip_box(centre, axes * 1.4 + 1)
        grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1) - centre
        rot = _random_rotation(rng)
        local = grid @ rot.T / axes
        r = np.linalg.norm(local, axis=-1)
        # lobulated surface: low-order angular modulation of the radius
        theta = np.arctan2(local[..., 1], local[..., 0])
        phi = np.arctan2(local[..., 2], np.hypot(local[..., 0], local[..., 1]))
        bumps = 1 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6.3)) * np.cos(2 * phi + rng.uniform(0, 6.3))
        weight = np.clip((bumps - r) / 0.15, 0.0, 1.0)
        inside = self.phantom.lobes[box] > 0
        weight = weight * inside
        mu = self.phantom.mu[box]
        dmu = weight * np.maximum(MU_SOFT * rng.uniform(0.95, 1.1) - mu, 0)
        return self._project(name, box, dmu.astype(np.float32), weight > 0.5)

    def nodule(self, rng: np.random.Generator) -> list[FindingInstance]:
        """1-2 round solid nodules of 10-24 mm diameter inside the lungs."""
        return [self._lesion("Nodule", rng, (5.0, 12.0)) for _ in range(1 + int(rng.random() < 0.3))]

    def mass(self, rng: np.random.Generator) -> list[FindingInstance]:
        """A lobulated solid mass of 35-70 mm diameter inside a lung."""
        return [self._lesion("Mass", rng, (17.0, 35.0))]

    # ------------------------------------------------------------------ pleura

    def effusion(self, rng: np.random.Generator) -> list[FindingInstance]:
        """Fluid filling a lung base up to a level that rises laterally (meniscus)."""
        side = "right" if rng.random() < 0.5 else "left"
        box = self.side_boxes[side]
        lung = self.sides[side][box]
        xs = np.arange(box[0].start, box[0].stop)
        zs = np.arange(box[2].start, box[2].stop)
        width = box[0].stop - box[0].start
        lateral = (box[0].stop - xs) / width if side == "right" else (xs - box[0].start) / width
        # the costophrenic angle as seen on the film: lowest lung point whose ray misses the liver
        seen = lung.any(axis=1) & ~self.below[box[0], box[2]]
        zlow = box[2].start + np.argwhere(seen)[:, 1].min()
        level = zlow + rng.uniform(0.0, 35.0) / self.mm
        ys = np.arange(box[1].start, box[1].stop)
        ap = np.abs(ys - ys.mean()) / (len(ys) / 2)
        # the surface is a bowl: it climbs along the lateral, anterior and posterior chest walls (meniscus),
        # so the fluid path, and the density on the film, fades gradually upwards
        lateral_rise = rng.uniform(20.0, 45.0) / self.mm * lateral**2
        ap_rise = rng.uniform(20.0, 40.0) / self.mm * ap**2
        surface = level + lateral_rise[:, None] + ap_rise[None, :]  # (x, y)
        fill = np.clip((surface[:, :, None] - zs[None, None, :]) / (8.0 / self.mm), 0.0, 1.0) * lung
        mu = self.phantom.mu[box]
        dmu = (fill * (MU_FLUID - mu)).astype(np.float32)
        return [self._project("Effusion", box, dmu, fill >= 0.5)]

    def pneumothorax(self, rng: np.random.Generator) -> list[FindingInstance]:
        """Air between lung and chest wall: the lung of one side collapses towards its hilum, leaving an
        apical and lateral rim of air without lung markings; the collapsed lung keeps its markings and
        its edge (visceral pleura) shows as a line."""
        side = "right" if rng.random() < 0.5 else "left"
        box = self.side_boxes[side]
        lung = self.sides[side][box]
        shape = np.array(lung.shape)
        # anchor near the medial base (hilum and pulmonary ligament): the air collects apically and laterally
        medial = 0.8 if side == "right" else 0.2
        anchor = np.array([medial, 0.5, rng.uniform(0.1, 0.25)]) * (shape - 1)
        scale = rng.uniform(0.72, 0.9)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), 0).astype(np.float32)
        src = anchor[:, None, None, None] + (grid - anchor[:, None, None, None]) / scale
        mu = self.phantom.mu[box]
        inside = ndimage.map_coordinates(lung.astype(np.float32), src, order=1, mode="constant") >= 0.5
        collapsed = inside & lung
        new_mu = np.where(collapsed, ndimage.map_coordinates(mu, src, order=1, mode="nearest") / scale, 0.0)
        # visceral pleural line: the outer shell of the collapsed lung is slightly denser
        shell = collapsed & ~ndimage.binary_erosion(collapsed)
        new_mu = new_mu + shell * 0.3 * MU_WATER
        dmu = np.where(lung, new_mu - mu, 0.0).astype(np.float32)
        inst = self._project("Pneumothorax", box, dmu, lung & ~collapsed)
        # footprint: rays that crossed lung before and cross none now (the rim without markings)
        fp = np.zeros(self.shape2d, dtype=bool)
        fp[box[0], box[2]] = lung.any(axis=1) & ~collapsed.any(axis=1)
        opened = ndimage.binary_opening(fp)
        inst.footprint = opened if opened.any() else fp
        return [inst]

    # ------------------------------------------------------------------ airspace and volume

    def _lobe_region(self, rng: np.random.Generator, lobes: list[int], radius_mm: tuple[float, float]):
        lobe = lobes[rng.integers(len(lobes))]
        vox = self.lobe_voxels[lobe]
        # centre where the film shows the lung (not behind the liver and diaphragm)
        seen = vox[~self.below[vox[:, 0], vox[:, 2]]]
        vox = seen if len(seen) else vox
        centre = vox[rng.integers(len(vox))].astype(float)
        radius = rng.uniform(*radius_mm) / self.mm
        box = self._clip_box(centre, np.full(3, radius + 1))
        grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1) - centre
        r = np.linalg.norm(grid, axis=-1) / radius
        in_lobe = self.phantom.lobes[box] == lobe + 1
        return box, r, in_lobe

    def consolidation(self, rng: np.random.Generator) -> list[FindingInstance]:
        """Part of a lobe filled to soft-tissue density (patchy edges, sharp at the fissures)."""
        box, r, in_lobe = self._lobe_region(rng, list(range(len(LOBES))), (25.0, 45.0))
        texture = ndimage.gaussian_filter(rng.standard_normal(r.shape).astype(np.float32), 2.0)
        texture /= texture.std() + 1e-6
        fill = np.clip(1.0 - r + 0.15 * texture, 0.0, 0.35) / 0.35 * in_lobe
        mu = self.phantom.mu[box]
        dmu = fill * np.maximum(MU_SOFT * 0.95 - mu, 0) * rng.uniform(0.75, 0.95)
        return [self._project("Consolidation", box, dmu.astype(np.float32), fill > 0.5)]

    def atelectasis(self, rng: np.random.Generator) -> list[FindingInstance]:
        """Volume loss: a lobe collapsed towards the hilum, or a plate-like band in a lower lobe."""
        mu_all = self.phantom.mu
        if rng.random() < 0.5:
            lobe = [
                LOBES.index("lung_lower_lobe_right"),
                LOBES.index("lung_lower_lobe_left"),
                LOBES.index("lung_middle_lobe_right"),
            ][rng.integers(3)]
            vox = self.lobe_voxels[lobe]
            lo, hi = vox.min(0), vox.max(0) + 1
            box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            in_lobe = self.phantom.lobes[box] == lobe + 1
            anchor = np.array([np.mean(vox[:, 0]) * 0.5 + self.midline * 0.5, vox[:, 1].mean(), vox[:, 2].max()])
            s = rng.uniform(0.45, 0.65)
            grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), -1)
            src = np.round(anchor + (grid - anchor) / s).astype(int)
            ok = np.all((src >= lo) & (src < hi), axis=-1)
            src = np.where(ok[..., None], src, lo)
            collapsed = ok & (self.phantom.lobes[src[..., 0], src[..., 1], src[..., 2]] == lobe + 1) & in_lobe
            collapsed = ndimage.binary_opening(collapsed)
            dmu = np.where(collapsed, MU_SOFT * 0.95 - mu_all[box], 0.0) * rng.uniform(0.7, 0.9)
            return [self._project("Atelectasis", box, np.maximum(dmu, 0).astype(np.float32), collapsed)]
        # plate-like (discoid) atelectasis: a thin, slightly oblique band
        box, r, in_lobe = self._lobe_region(
            rng, [LOBES.index("lung_lower_lobe_right"), LOBES.index("lung_lower_lobe_left")], (20.0, 35.0)
        )
        zs = np.arange(box[2].start, box[2].stop, dtype=float)
        xs = np.arange(box[0].start, box[0].stop, dtype=float)
        zc = (box[2].start + box[2].stop) / 2 + np.tan(rng.uniform(-0.3, 0.3)) * (xs - xs.mean())
        half = rng.uniform(2.0, 4.0) / self.mm
        band = np.abs(zs[None, None, :] - zc[:, None, None]) <= half
        plate = band & (r < 1.0) & in_lobe
        dmu = np.where(plate, MU_SOFT * 0.95 - mu_all[box], 0.0)
        return [self._project("Atelectasis", box, np.maximum(dmu, 0).astype(np.float32), plate)]

    def cardiomegaly(self, rng: np.random.Generator) -> list[FindingInstance]:
        """Enlarged heart: the heart scaled about its centre (more to the left and down), displacing lung."""
        heart_vox = self.heart_voxels
        centre = heart_vox.mean(0)
        scale = np.array([rng.uniform(1.25, 1.45), rng.uniform(1.05, 1.15), rng.uniform(1.1, 1.25)])
        shift = np.array([rng.uniform(1.0, 4.0), 0.0, -rng.uniform(0.0, 3.0)])
        lo = np.floor(centre + (heart_vox.min(0) - centre) * scale + shift - 1).astype(int)
        hi = np.ceil(centre + (heart_vox.max(0) - centre) * scale + shift + 2).astype(int)
        lo, hi = np.maximum(lo, 0), np.minimum(hi, self.phantom.mu.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        grid = np.stack(np.meshgrid(*[np.arange(b.start, b.stop) for b in box], indexing="ij"), -1)
        src = np.round(centre + (grid - centre - shift) / scale).astype(int)
        src = np.clip(src, 0, np.array(self.phantom.mu.shape) - 1)
        big = self.heart[src[..., 0], src[..., 1], src[..., 2]]
        anatomy = self.phantom.anatomy[box]
        grow = big & ~self.heart[box] & ~np.isin(anatomy, _BONES) & (anatomy != ANATOMY_LABELS.index("diaphragm_liver"))
        mu = self.phantom.mu[box]
        dmu = np.where(grow, MU_WATER * 1.04 - mu, 0.0).astype(np.float32)
        inst = self._project("Cardiomegaly", box, dmu, big | self.heart[box])
        inst.anatomy_override = (_HEART, inst.footprint)
        return [inst]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))
