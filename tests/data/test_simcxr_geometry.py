"""Film geometry of the simulated chest radiographs: drawn ranges, the narrow (simcxr 1.0) setting, ground truth that
follows the image under the wide warps, perspective, inspiration, the projection beyond the CT, determinism."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest
from dataclasses import replace

import numpy as np
from parameterized import parameterized
from scipy import ndimage

from monai_afire.data import simcxr_phantom
from monai_afire.data.simcxr import SimCXRGenerator, SimCXRSettings
from monai_afire.data.simcxr_geometry import (
    WIDE_GEOMETRY,
    FilmGeometry,
    draw_film_geometry,
    draw_patient_habitus,
    inspiration_shift,
    relative_magnification,
)
from monai_afire.data.simcxr_phantom import ANATOMY_LABELS, project_slabs

SIZE = 48
LUNGS = [ANATOMY_LABELS.index("right_lung"), ANATOMY_LABELS.index("left_lung")]
HEART = ANATOMY_LABELS.index("heart")
_STATE: dict = {}


def setUpModule() -> None:  # noqa: N802 - unittest's name
    """Prepare the phantom once, in a temporary cache folder."""
    _STATE["cache"] = tempfile.mkdtemp(prefix="afire_cache_")
    _STATE["env"] = os.environ.get("MONAI_AFIRE_CACHE")
    os.environ["MONAI_AFIRE_CACHE"] = _STATE["cache"]
    _STATE["phantom"] = simcxr_phantom.load_phantom()


def tearDownModule() -> None:  # noqa: N802 - unittest's name
    if _STATE["env"] is None:
        os.environ.pop("MONAI_AFIRE_CACHE", None)
    else:
        os.environ["MONAI_AFIRE_CACHE"] = _STATE["env"]
    shutil.rmtree(_STATE["cache"], ignore_errors=True)


def _generator(geometry: str = "wide", size: int = SIZE, seed: int = 0) -> SimCXRGenerator:
    return SimCXRGenerator(SimCXRSettings(image_size=size, geometry=geometry), seed=seed, phantom=_STATE["phantom"])


def _fixed(geometry: FilmGeometry, raw: bool = False, lungs_only: bool = False, size: int = SIZE) -> _Fixed:
    """The module's one :class:`_Fixed` generator (built once: building one takes about half a second)."""
    if "fixed" not in _STATE:
        _STATE["fixed"] = _Fixed(SimCXRSettings(image_size=SIZE), seed=2, phantom=_STATE["phantom"])
    return _STATE["fixed"].configure(geometry, raw, lungs_only, size)


# an AP film with every wide warp near the end of its range
STRONG_AP = FilmGeometry(
    view="AP",
    field_mm=430.0,
    scale=np.array([0.8, 0.9]),
    rotation_deg=11.0,
    shift_mm=np.zeros(2),
    centring=np.array([0.08, -0.1]),
    yaw_deg=7.0,
    pitch_deg=-8.0,
    inspiration_mm=35.0,
    source_distance_mm=1000.0,
    detector_gap_mm=40.0,
    margins=np.array([0.05, 0.0, 0.1, 0.02]),
)


class _Fixed(SimCXRGenerator):
    """A generator whose films all have one given geometry; optionally it shows only the lungs' line integral
    and displays the raw line integral (no exposure, noise or processing)."""

    def configure(self, geometry: FilmGeometry, raw: bool = False, lungs_only: bool = False, size: int = SIZE):
        self.settings.image_size = size
        self.fixed, self.raw, self.lungs_only = geometry, raw, lungs_only
        return self

    def _film_geometry(self, pat, follow_up, jitter):  # noqa: ANN001, ANN202 - test double
        return replace(self.fixed)

    def _patient_slabs(self, pat):  # noqa: ANN001, ANN202 - test double
        return self.slabs.lung if self.lungs_only else super()._patient_slabs(pat)

    def _display(self, integral, lungs, rng):  # noqa: ANN001, ANN202 - test double
        return integral.astype(np.float32) if self.raw else super()._display(integral, lungs, rng)


def _field(geo: FilmGeometry, size: int = SIZE) -> np.ndarray:
    top, bottom, left, right = (np.asarray(geo.margins) * size).astype(int)
    field = np.zeros((size, size), dtype=bool)
    field[top : size - bottom, left : size - right] = True
    return field


class TestDrawnRanges(unittest.TestCase):
    def test_wide_film_ranges(self) -> None:
        rng = np.random.default_rng(0)
        r = WIDE_GEOMETRY
        films = [draw_film_geometry(r, np.ones(2), rng) for _ in range(3000)]
        ap = np.array([f.view == "AP" for f in films])
        self.assertAlmostEqual(ap.mean(), r.ap_fraction, delta=0.03)
        field = np.array([f.field_mm for f in films])
        self.assertTrue(r.field_mm[0] <= field.min() and field.max() <= r.field_mm[1])
        self.assertLess(field.min(), r.field_mm[0] * 1.02)
        self.assertGreater(field.max(), r.field_mm[1] * 0.98)
        for name, limit in (
            ("rotation_deg", r.rotation_max_deg),
            ("yaw_deg", r.yaw_max_deg),
            ("pitch_deg", r.pitch_max_deg),
        ):
            values = np.array([getattr(f, name) for f in films])
            self.assertLessEqual(np.abs(values).max(), limit)
            # portable AP films vary more than erect PA films, with about the stated spread
            for k, view in enumerate((~ap, ap)):
                sd = getattr(r, name)[k]
                self.assertAlmostEqual(values[view].std(), sd, delta=0.15 * sd)
        centring = np.array([f.centring for f in films])
        self.assertTrue(np.all(np.abs(centring) <= np.array(r.centring_max)))
        np.testing.assert_allclose(centring.std(0), r.centring_sd, rtol=0.15)
        rise = np.array([f.inspiration_mm for f in films])
        for view, bounds in ((ap, r.ap_inspiration_mm), (~ap, r.pa_inspiration_mm)):
            self.assertTrue(bounds[0] <= rise[view].min() and rise[view].max() <= bounds[1])
        sid = np.array([f.source_distance_mm for f in films])
        self.assertTrue(np.all(sid[~ap] == r.pa_source_distance_mm[0]))
        self.assertTrue(r.ap_source_distance_mm[0] <= sid[ap].min() and sid[ap].max() <= r.ap_source_distance_mm[1])
        margins = np.array([f.margins for f in films])
        shown = margins > 0
        self.assertAlmostEqual(shown.mean(), r.collimation_probability, delta=0.03)
        self.assertTrue(r.collimation[0] <= margins[shown].min() and margins[shown].max() <= r.collimation[1])

    def test_patient_habitus(self) -> None:
        rng = np.random.default_rng(1)
        r = WIDE_GEOMETRY
        drawn = [draw_patient_habitus(r, rng) for _ in range(4000)]
        child = np.array([c for c, _ in drawn])
        scale = np.array([s for _, s in drawn])
        self.assertAlmostEqual(child.mean(), r.child_fraction, delta=0.015)
        lo, hi = r.scale[0] * r.aspect[0], r.scale[1] * r.aspect[1]
        self.assertTrue(np.all((scale[~child] >= lo) & (scale[~child] <= hi)))
        self.assertTrue(np.all(scale[child] <= r.child_scale[1] * r.aspect[1]))
        # the two axes are scaled separately
        self.assertGreater(np.abs(scale[:, 0] - scale[:, 1]).max(), 0.05)

    def test_magnification(self) -> None:
        geo = replace(STRONG_AP)
        np.testing.assert_allclose(relative_magnification(geo, np.array([300.0]), 150.0), [850.0 / 700.0])
        self.assertEqual(float(relative_magnification(geo, np.array(150.0), 150.0)), 1.0)
        geo.source_distance_mm = None
        np.testing.assert_array_equal(relative_magnification(geo, np.array([10.0, 300.0]), 150.0), [1.0, 1.0])
        geo.source_distance_mm = 200.0
        with self.assertRaisesRegex(ValueError, "source distance"):
            relative_magnification(geo, np.array([300.0]), 150.0)

    @parameterized.expand([(40.0,), (-15.0,)])
    def test_inspiration_shift(self, rise: float) -> None:
        length = 150.0
        t = np.linspace(-50.0, 250.0, 3001)
        src = inspiration_shift(t, rise, length)
        np.testing.assert_allclose(src[t <= 0], t[t <= 0])  # apices and neck fixed
        np.testing.assert_allclose(src[t >= length], t[t >= length] + rise)  # abdomen moved rigidly
        slope = np.diff(src) / np.diff(t)
        self.assertGreater(slope.min(), 0.0)  # monotone
        self.assertLess(np.abs(np.diff(slope)).max(), 0.01)  # no kink
        with self.assertRaisesRegex(ValueError, "rise_mm"):
            inspiration_shift(t, -80.0, length)


class TestNarrowGeometry(unittest.TestCase):
    def test_draws_of_simcxr_1(self) -> None:
        """The narrow films use simcxr 1.0's draws: patient pose from the patient's stream in 1.0's order."""
        gen = _generator("narrow", size=32, seed=3)
        rotations, shifts = [], []
        for pid, fu in gen.plan(120):
            geo = gen.sample(pid, fu, findings=[]).geometry
            rng = np.random.default_rng([3, pid])
            rng.integers(18, 90), rng.random()
            np.testing.assert_array_equal(geo.scale, [rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)])
            self.assertEqual((geo.view, geo.field_mm, geo.source_distance_mm), ("PA", 330.0, None))
            self.assertEqual((geo.pitch_deg, geo.inspiration_mm), (0.0, 0.0))
            np.testing.assert_array_equal(geo.centring, [0.0, 0.0])
            self.assertTrue(np.all((geo.margins >= 0) & (geo.margins <= 0.05)))
            self.assertLessEqual(abs(geo.yaw_deg), 6.0 + 5.0)
            rotations.append(geo.rotation_deg)
            shifts.append(geo.shift_mm)
        # patient N(0, 2) plus film N(0, 1) degrees; patient N(0, 6) plus film N(0, 3) mm
        self.assertTrue(1.4 < np.std(rotations) < 3.2, np.std(rotations))
        self.assertTrue(4.5 < np.std(shifts) < 9.5, np.std(shifts))

    def test_same_findings_in_both_geometries(self) -> None:
        prevalence = {"Mass": 0.5, "Consolidation": 0.5}
        narrow, wide = (
            SimCXRGenerator(SimCXRSettings(image_size=32, geometry=g, prevalence=prevalence), 5, _STATE["phantom"])
            for g in ("narrow", "wide")
        )
        same = [narrow.sample(p, 0).findings == wide.sample(p, 0).findings for p in range(1, 11)]
        # findings are drawn identically; collimation or the field's edge may hide one in a few films
        self.assertGreaterEqual(np.mean(same), 0.7)
        self.assertFalse(np.array_equal(narrow.sample(1, 0).image, wide.sample(1, 0).image))

    def test_follow_ups_close_in_pose(self) -> None:
        gen = _generator("narrow")
        first, follow, other = (
            gen.sample(1, 0, findings=[]),
            gen.sample(1, 1, findings=[]),
            gen.sample(2, 0, findings=[]),
        )
        self.assertLess(np.abs(follow.image - first.image).mean(), np.abs(other.image - first.image).mean() * 1.5)


class TestGroundTruthFollowsImage(unittest.TestCase):
    @parameterized.expand([("Mass",), ("Nodule",), ("Consolidation",), ("Effusion",), ("Atelectasis",)])
    def test_mask_where_the_finding_changed_the_image(self, name: str) -> None:
        gen = _fixed(STRONG_AP, raw=True)
        field = _field(STRONG_AP)
        checked = 0
        for pid in (1, 2, 3):
            clean, ill = gen.sample(pid, 0, findings=[]), gen.sample(pid, 0, findings=[name])
            if name not in ill.masks:
                continue
            checked += 1
            mask = ill.masks[name]
            changed = (np.abs(ill.image - clean.image) > 1e-3) & field
            near = ndimage.binary_dilation(mask, iterations=2)
            self.assertGreaterEqual((mask & changed).sum() / mask.sum(), 0.97)
            self.assertGreaterEqual((changed & near).sum() / changed.sum(), 0.95)
            # the boxes hold the mask exactly
            covered = np.zeros_like(mask)
            for (x0, y0, x1, y1), label in zip(ill.boxes, ill.box_labels):
                if label == name:
                    covered[int(y0) : int(y1), int(x0) : int(x1)] = True
            self.assertTrue(np.all(mask <= covered))
        self.assertGreaterEqual(checked, 2)

    def test_cardiomegaly_heart_label(self) -> None:
        gen = _fixed(STRONG_AP, raw=True)
        clean, ill = gen.sample(1, 0, findings=[]), gen.sample(1, 0, findings=["Cardiomegaly"])
        mask = ill.masks["Cardiomegaly"]
        changed = (np.abs(ill.image - clean.image) > 1e-3) & _field(STRONG_AP)
        self.assertTrue(np.all(ill.anatomy[mask] == HEART))
        self.assertGreater((ill.anatomy == HEART).sum(), (clean.anatomy == HEART).sum() * 1.1)
        self.assertGreaterEqual((changed & ndimage.binary_dilation(mask, iterations=2)).sum() / changed.sum(), 0.95)

    @parameterized.expand([("strong_ap", STRONG_AP), ("pa", replace(STRONG_AP, view="PA", source_distance_mm=1800.0))])
    def test_lung_labels_where_the_lungs_project(self, _: str, geometry: FilmGeometry) -> None:
        """A film of the lungs' line integral alone: the lung labels lie where it is positive."""
        gen = _fixed(geometry, raw=True, lungs_only=True)
        film = gen.sample(4, 0, findings=[])
        inside = _field(geometry)
        lung_path = (film.image > 1e-4) & inside
        labelled = np.isin(film.anatomy, LUNGS)
        self.assertGreater(labelled.sum(), 0.02 * SIZE * SIZE)
        self.assertGreaterEqual((labelled & lung_path).sum() / labelled.sum(), 0.97)
        # the lung path is labelled lung unless a denser structure (ribs, spine, heart, clavicles) lies in front
        lungish = np.isin(
            film.anatomy, [*LUNGS, *(ANATOMY_LABELS.index(n) for n in ("ribs", "spine", "heart", "clavicles"))]
        )
        self.assertGreaterEqual((lung_path & lungish).sum() / lung_path.sum(), 0.9)
        # a control: a map shifted by 3 pixels fails the first check
        shifted = np.roll(labelled, 3, axis=1)
        self.assertLess((shifted & lung_path).sum() / shifted.sum(), 0.97)

    def test_lungs_dark_on_wide_films(self) -> None:
        gen = _generator("wide", seed=4)
        for pid in range(1, 7):
            film = gen.sample(pid, 0, findings=[])
            lungs = film.image[np.isin(film.anatomy, LUNGS)].mean()
            for name in ("heart", "spine", "diaphragm_liver"):
                region = film.anatomy == ANATOMY_LABELS.index(name)
                if region.sum() >= 10:
                    self.assertLess(lungs, film.image[region].mean(), (pid, name))


class TestBeamAndBreath(unittest.TestCase):
    def test_ap_magnifies_the_heart(self) -> None:
        """Same field and pose: the heart, anterior, lies far from the detector of an AP film (source at 1 m) and
        near that of a PA film (source at 1.8 m), so it is larger on the AP film; a parallel beam lies between."""
        plain = replace(
            STRONG_AP, rotation_deg=0.0, yaw_deg=0.0, pitch_deg=0.0, inspiration_mm=0.0, centring=np.zeros(2)
        )
        plain.margins = np.zeros(4)
        area = {}
        for view, sid in (("AP", 1000.0), ("PA", 1800.0), ("parallel", None)):
            geometry = replace(plain, view="PA" if view == "parallel" else view, source_distance_mm=sid)
            film = _fixed(geometry, size=96).sample(1, 0, findings=[])
            area[view] = (film.anatomy == HEART).sum()
        self.assertGreater(area["AP"], area["PA"] * 1.06)
        self.assertTrue(area["PA"] <= area["parallel"] <= area["AP"], area)

    def test_inspiration_raises_the_diaphragm_not_the_apices(self) -> None:
        plain = replace(
            STRONG_AP, rotation_deg=0.0, yaw_deg=0.0, pitch_deg=0.0, centring=np.zeros(2), margins=np.zeros(4)
        )
        rows = {}
        for rise in (0.0, 40.0):
            film = _fixed(replace(plain, inspiration_mm=rise), raw=True, lungs_only=True).sample(1, 0, findings=[])
            lung_rows = np.flatnonzero(film.image.max(axis=1) > 0.05)
            rows[rise] = (lung_rows[0], lung_rows[-1])
        self.assertLessEqual(abs(rows[40.0][0] - rows[0.0][0]), 1)  # apices stay
        pixels = 40.0 * plain.scale[1] / (plain.field_mm / SIZE)
        self.assertGreaterEqual(rows[0.0][1] - rows[40.0][1], 0.6 * pixels)  # the bases rise


class TestDeterminismAndExtension(unittest.TestCase):
    def test_same_film_whatever_was_drawn_before(self) -> None:
        fresh = _generator("wide", seed=9).sample(3, 1)
        used = _generator("wide", seed=9)
        used.sample(2, 0), used.sample(3, 0)
        again = used.sample(3, 1)
        np.testing.assert_array_equal(fresh.image, again.image)
        np.testing.assert_array_equal(fresh.anatomy, again.anatomy)
        self.assertEqual(fresh.geometry.view, again.geometry.view)
        other = _generator("wide", seed=10).sample(3, 1)
        self.assertFalse(np.array_equal(fresh.image, other.image))

    def test_settings_reject_unknown_geometry(self) -> None:
        with self.assertRaisesRegex(ValueError, "geometry"):
            SimCXRSettings(geometry="round")

    def test_projection_beyond_the_ct(self) -> None:
        ph = _STATE["phantom"]
        sl = project_slabs(ph, num_slabs=4, pad_mm=(20.0, 40.0, 60.0))
        ox, oz = sl.offset
        nx, _, nz = ph.mu.shape
        self.assertEqual(sl.soft.shape, (4, nx + 2 * ox, nz + oz + 30))
        # inside the CT: the plain projection
        total = (sl.soft + sl.bone)[:, ox : ox + nx, oz : oz + nz].sum(0)
        np.testing.assert_allclose(total, ph.mu.sum(axis=1) * ph.spacing, rtol=1e-4, atol=1e-4)
        # beyond the sides: air at the edge
        self.assertEqual(float(np.abs(sl.soft[:, 0]).max()), 0.0)
        # above: a neck with the trachea's air in its middle and the spine behind it; below: the abdomen
        neck = sl.soft[:, :, -1].sum(0)
        lungs = np.isin(ph.anatomy, LUNGS).any(axis=(1, 2))
        mid = ox + int(round(np.flatnonzero(lungs).mean()))
        self.assertLess(neck[mid], neck[mid + 8])
        self.assertGreater(neck[mid + 8], 1.5)
        self.assertEqual(neck[: ox + 10].max(), 0.0)  # no shoulders up there
        self.assertGreater(sl.counts[:, mid - 2 : mid + 3, -1, ANATOMY_LABELS.index("spine")].sum(), 0)
        self.assertGreater(sl.soft[:, mid, 0].sum(), 2.0)
        self.assertEqual(int(sl.counts[..., LUNGS].sum(axis=(0, 1, 3))[:oz].max()), 0)


if __name__ == "__main__":
    unittest.main()
