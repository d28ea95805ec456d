"""Geometry of the simulated chest films: patient pose, field of view, collimation and the X-ray beam.

Two settings (``SimCXRSettings.geometry``):

- ``"wide"`` (default since simcxr 2.0): the variation of real frontal films (ChestX-ray14 has PA and AP films,
  many of them portable AP films taken in bed), with the ranges of :data:`WIDE_GEOMETRY`, each explained in
  :class:`GeometryRanges`.
- ``"narrow"``: the geometry of simcxr 1.0, kept so earlier experiments can be repeated: body scale 0.9-1.1 on
  each axis, in-plane rotation N(0, 2 deg) per patient plus N(0, 1 deg) per film, shift N(0, 6 mm) per patient
  plus N(0, 3 mm) per film, rotation about the vertical axis N(0, 2.5 deg) (clipped at 6 deg) per patient plus
  N(0, 1 deg) per film, a fixed 330 mm field with the lung apices 7 % below its top, collimation margins of
  0-5 % per side, parallel beam, all films PA. On a random ViT, the token position alone tells the anatomy on
  these films (token anatomy k-NN 0.89), which is why ``"wide"`` became the default.

A film's geometry is drawn once per film (:class:`FilmGeometry`); its parameters are the same for the image, the
anatomy map, the finding masks and the boxes, which are all sampled through the same coordinate maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GEOMETRIES",
    "GeometryRanges",
    "WIDE_GEOMETRY",
    "FilmGeometry",
    "draw_patient_habitus",
    "draw_film_geometry",
    "relative_magnification",
    "inspiration_shift",
]

GEOMETRIES: tuple[str, ...] = ("narrow", "wide")
"""Names accepted by ``SimCXRSettings.geometry``."""


@dataclass(frozen=True)
class GeometryRanges:
    """Ranges of the ``"wide"`` film geometry. Angles in degrees, lengths in mm at the patient's mid-plane.

    Reasons (facts about real frontal chest films, or marked as a judgement where they are one):

    Attributes:
        ap_fraction: probability that a film is AP. ChestX-ray14 lists 67,310 PA and 44,810 AP films (40 % AP).
        pa_source_distance_mm: source-to-detector distance of PA films: the standard erect PA film is taken at
            180 cm (72 inches).
        ap_source_distance_mm: of AP films: portable AP films are taken at about 100-120 cm (40-48 inches), so
            anterior structures (the heart) are magnified more than posterior ones (spine, posterior ribs).
        detector_gap_mm: skin to detector plane (cassette or detector housing, a mattress on supine films):
            a judgement, 20-60 mm.
        field_mm: side of the imaged square field, drawn log-uniformly. Chest detectors are 35 x 43 or
            43 x 43 cm and magnify the patient by about 1.05-1.2, so at most about 300-410 mm of the patient
            are imaged; collimation narrows the field to the lungs, loose collimation (common on portable
            films) keeps the neck and the upper abdomen. 300-450 mm is a judgement of that spread.
        scale: body scale of adults (both axes): adult chest widths vary by about +-15 % (small women to large
            men; a judgement from anthropometric tables).
        child_fraction: fraction of patients drawn as children. ChestX-ray14 includes children (a small
            minority of its patients; 5 % is a judgement).
        child_scale: body scale of children; the phantom is an adult's chest scaled down, so children are
            only approximately right (their heart and head are relatively larger).
        aspect: each axis of a patient's body scale is further multiplied by a factor in this range (broad or
            narrow chests, long or short ones).
        rotation_deg: standard deviation of the in-plane rotation of (PA, AP) films. Erect PA films are
            usually straight within a few degrees; portable films are often rotated by up to ~10-15 degrees.
        rotation_max_deg: clip of the in-plane rotation.
        yaw_deg: standard deviation of the rotation about the vertical axis (PA, AP): the clavicle heads and
            spinous processes move apart; common on portable films (judgement: a few degrees, up to ~10).
        yaw_max_deg: clip of that rotation.
        pitch_deg: standard deviation of the tilt about the left-right axis (PA, AP): the lordotic projection
            of supine AP films lifts the clavicles above the lung apices (judgement).
        pitch_max_deg: clip of that tilt.
        centring_sd: standard deviation of the centring error (horizontal, vertical) as a fraction of the
            field: real films are often off-centre by 10 % of the field or more, more often vertically
            (apices or costophrenic angles cut off).
        centring_max: clip of the centring error (horizontal, vertical), fraction of the field.
        pa_inspiration_mm: range of the diaphragm's rise (positive: shallower breath) on PA films. A good
            inspiration puts the right dome at the 10th posterior rib; +-1 rib is about +-15-20 mm.
        ap_inspiration_mm: the same on AP films: supine and portable films are often taken in shallow
            inspiration, 8 posterior ribs or fewer (2 rib spaces, about 40-50 mm higher).
        collimation_probability: probability that a side of the film shows an unexposed (white) collimation
            border (judgement: many ChestX-ray14 films show one on one or more sides).
        collimation: range of that border's width as a fraction of the image side (judgement: usually a few
            percent, on portable films sometimes more than a tenth).
    """

    ap_fraction: float = 0.4
    pa_source_distance_mm: tuple[float, float] = (1800.0, 1800.0)
    ap_source_distance_mm: tuple[float, float] = (1000.0, 1200.0)
    detector_gap_mm: tuple[float, float] = (20.0, 60.0)
    field_mm: tuple[float, float] = (300.0, 450.0)
    scale: tuple[float, float] = (0.88, 1.12)
    child_fraction: float = 0.05
    child_scale: tuple[float, float] = (0.6, 0.85)
    aspect: tuple[float, float] = (0.94, 1.06)
    rotation_deg: tuple[float, float] = (2.0, 5.0)
    rotation_max_deg: float = 15.0
    yaw_deg: tuple[float, float] = (2.5, 4.0)
    yaw_max_deg: float = 10.0
    pitch_deg: tuple[float, float] = (2.0, 5.0)
    pitch_max_deg: float = 12.0
    centring_sd: tuple[float, float] = (0.04, 0.06)
    centring_max: tuple[float, float] = (0.10, 0.15)
    pa_inspiration_mm: tuple[float, float] = (-15.0, 15.0)
    ap_inspiration_mm: tuple[float, float] = (0.0, 45.0)
    collimation_probability: float = 0.5
    collimation: tuple[float, float] = (0.01, 0.12)


WIDE_GEOMETRY = GeometryRanges()
"""The default (``"wide"``) ranges."""


@dataclass
class FilmGeometry:
    """The geometry of one film.

    Attributes:
        view: ``"PA"`` or ``"AP"``.
        field_mm: side of the square field (mm at the patient's mid-plane, before body scaling).
        scale: body scale (x, y).
        rotation_deg: in-plane rotation (counter-clockwise on the image).
        shift_mm: translation of the anatomy in the patient's frame (mm; the narrow geometry's shift).
        centring: centring error (horizontal, vertical) as a fraction of the field, in the detector's frame.
        yaw_deg: rotation about the vertical axis (slabs at different depths shift sideways).
        pitch_deg: tilt about the left-right axis (slabs at different depths shift vertically).
        inspiration_mm: rise of the diaphragm (positive: shallower breath), lung apices fixed.
        source_distance_mm: source-to-detector distance; None for a parallel beam (no perspective).
        detector_gap_mm: skin to detector plane.
        margins: unexposed collimation borders (top, bottom, left, right) as fractions of the image side.
    """

    view: str
    field_mm: float
    scale: np.ndarray
    rotation_deg: float
    shift_mm: np.ndarray
    centring: np.ndarray
    yaw_deg: float
    pitch_deg: float
    inspiration_mm: float
    source_distance_mm: float | None
    detector_gap_mm: float
    margins: np.ndarray


def draw_patient_habitus(ranges: GeometryRanges, rng: np.random.Generator) -> tuple[bool, np.ndarray]:
    """A patient's body: (is a child, body scale (x, y))."""
    child = bool(rng.random() < ranges.child_fraction)
    base = rng.uniform(*(ranges.child_scale if child else ranges.scale))
    return child, base * rng.uniform(*ranges.aspect, size=2)


def _clipped_normal(rng: np.random.Generator, sd: float, limit: float) -> float:
    return float(np.clip(rng.normal(0.0, sd), -limit, limit))


def draw_film_geometry(ranges: GeometryRanges, scale: np.ndarray, rng: np.random.Generator) -> FilmGeometry:
    """Draw one film's geometry with ``ranges`` for a patient of body ``scale`` (see :class:`GeometryRanges`)."""
    ap = bool(rng.random() < ranges.ap_fraction)
    k = int(ap)
    lo, hi = ranges.field_mm
    field = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    distance = float(rng.uniform(*(ranges.ap_source_distance_mm if ap else ranges.pa_source_distance_mm)))
    gap = float(rng.uniform(*ranges.detector_gap_mm))
    rotation = _clipped_normal(rng, ranges.rotation_deg[k], ranges.rotation_max_deg)
    yaw = _clipped_normal(rng, ranges.yaw_deg[k], ranges.yaw_max_deg)
    pitch = _clipped_normal(rng, ranges.pitch_deg[k], ranges.pitch_max_deg)
    centring = np.array([_clipped_normal(rng, ranges.centring_sd[i], ranges.centring_max[i]) for i in range(2)])
    inspiration = float(rng.uniform(*(ranges.ap_inspiration_mm if ap else ranges.pa_inspiration_mm)))
    sides = rng.random(4) < ranges.collimation_probability
    margins = np.where(sides, rng.uniform(*ranges.collimation, size=4), 0.0)
    return FilmGeometry(
        view="AP" if ap else "PA",
        field_mm=field,
        scale=np.asarray(scale, dtype=float),
        rotation_deg=rotation,
        shift_mm=np.zeros(2),
        centring=centring,
        yaw_deg=yaw,
        pitch_deg=pitch,
        inspiration_mm=inspiration,
        source_distance_mm=distance,
        detector_gap_mm=gap,
        margins=margins,
    )


def relative_magnification(geometry: FilmGeometry, detector_distance_mm: np.ndarray, axis_distance_mm: float):
    """Magnification of structures at ``detector_distance_mm`` from the detector plane relative to those at
    ``axis_distance_mm`` (the plane whose scale ``field_mm`` refers to): ``M(d) / M(axis)`` with
    ``M(d) = SID / (SID - d)`` for a point source at SID; ones for a parallel beam."""
    d = np.asarray(detector_distance_mm, dtype=float)
    if geometry.source_distance_mm is None:
        return np.ones_like(d)
    sid = geometry.source_distance_mm
    if np.any(d >= sid) or axis_distance_mm >= sid:
        raise ValueError(f"detector distances must be below the source distance {sid} mm.")
    return (sid - axis_distance_mm) / (sid - d)


def inspiration_shift(depth_below_apex: np.ndarray, rise_mm: float, apex_to_dome_mm: float) -> np.ndarray:
    """Where to read the un-deformed chest for a film whose diaphragm rose by ``rise_mm`` (lung apices fixed).

    The lungs are compressed vertically by a smooth (C1) map: a point ``t`` mm below the apices in the film
    shows the chest at ``t + rise * (t / L - sin(2 pi t / L) / (2 pi))`` for ``0 <= t <= L`` (``L`` the
    apex-to-dome distance), ``t + rise`` below the dome (the abdomen moves rigidly) and ``t`` above the apices.
    It is monotone for ``rise > -L / 2``.

    Returns:
        the source depth below the apices (mm), same shape as ``depth_below_apex``.
    """
    t = np.asarray(depth_below_apex)
    t = t if np.issubdtype(t.dtype, np.floating) else t.astype(float)
    length = float(apex_to_dome_mm)
    if rise_mm <= -length / 2:
        raise ValueError(f"rise_mm must exceed -L/2 = {-length / 2:.1f} mm, got {rise_mm}.")
    u = np.clip(t * t.dtype.type(1 / length), 0, 1)
    two_pi = t.dtype.type(2 * np.pi)
    return t + t.dtype.type(rise_mm) * (u - np.sin(two_pi * u) / two_pi)
