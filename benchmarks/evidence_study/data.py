"""The study's data: unlabelled pre-training films and labelled downstream films (another seed), prepared exactly as
the bundles prepare films, split patient-wise into train / validation / test, with a guard that keeps the test split
closed until the study's choices are frozen and written down."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FINDINGS",
    "Split",
    "ClosedTestSplit",
    "DownstreamData",
    "generate_films",
    "prepare_images",
    "load_pretrain_images",
    "load_downstream",
]

SPLITS = ("train", "val", "test")


def _findings() -> tuple[str, ...]:
    from monai_afire.data.simcxr_findings import FINDINGS as names

    return tuple(names)


FINDINGS = _findings()


class ClosedTestSplit(RuntimeError):
    """Raised when the test split is asked for before the study's choices are frozen."""


@dataclass
class Split:
    """One downstream split, films prepared as the bundles prepare them ((1, S, S), MONAI layout: first axis = x).

    Attributes:
        name: ``train``, ``val`` or ``test``.
        images: float32 (N, 1, S, S) in [0, 1].
        labels: float32 (N, C) binary, one column per simulated finding (:data:`FINDINGS`).
        patients: (N,) patient ids (str).
        names: image file names.
        masks: bool (N, C, S, S) finding masks in the images' layout, or None (training split).
        anatomy: uint8 (N, S, S) anatomy label maps in the images' layout, or None.
        boxes: per film, the ``[x0, y0, x1, y1]`` pixel boxes of its findings (x along the image width).
        box_labels: per film, the finding name of each box.
    """

    name: str
    images: torch.Tensor
    labels: np.ndarray
    patients: np.ndarray
    names: list[str]
    masks: np.ndarray | None = None
    anatomy: np.ndarray | None = None
    boxes: list[list[list[float]]] | None = None
    box_labels: list[list[str]] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray) -> Split:
        """The films at ``index`` (images, labels, patients, names; maps and boxes when present)."""
        idx = np.asarray(index, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Split(
            self.name,
            self.images[torch.as_tensor(idx)],
            self.labels[idx],
            self.patients[idx],
            [self.names[i] for i in idx],
            pick(self.masks),
            pick(self.anatomy),
            None if self.boxes is None else [self.boxes[i] for i in idx],
            None if self.box_labels is None else [self.box_labels[i] for i in idx],
        )


def generate_films(
    folder: str | os.PathLike, num_images: int, seed: int, image_size: int, prevalence: float, test_fraction: float
) -> Path:
    """Generate simulated films with :func:`monai_afire.data.simcxr.generate_simcxr` unless ``folder`` holds them.

    Args:
        folder: output folder.
        num_images: films.
        seed: generator seed.
        image_size: side.
        prevalence: per-image probability of each simulated finding (0: normal films only).
        test_fraction: fraction of patients in ``test_list.txt``.
    """
    from monai_afire.data.simcxr import generate_simcxr

    folder = Path(folder)
    meta = folder / "simcxr.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        if (info.get("num_images"), info.get("seed"), info["settings"].get("image_size")) != (
            num_images,
            seed,
            image_size,
        ):
            raise ValueError(
                f"{folder} holds {info.get('num_images')} films of seed {info.get('seed')} at "
                f"{info['settings'].get('image_size')} px, not the {num_images} / {seed} / {image_size} asked for; "
                "use another --out folder or delete it."
            )
        return folder
    return Path(
        generate_simcxr(
            folder,
            num_images,
            seed=seed,
            image_size=image_size,
            prevalence={f: float(prevalence) for f in FINDINGS},
            test_fraction=test_fraction,
            overwrite=True,
        )
    )


def prepare_images(paths: Sequence[str], image_size: int) -> torch.Tensor:
    """Films prepared by :func:`monai_afire.transforms.radiograph_transforms` (as the bundles do): (N, 1, S, S)."""
    from monai_afire.transforms import radiograph_transforms

    prep = radiograph_transforms(image_size)
    out = torch.empty(len(paths), 1, image_size, image_size)
    for i, path in enumerate(paths):
        out[i] = torch.as_tensor(prep({"image": path})["image"]).float()
    return out


def _load_map(path: Path, image_size: int) -> np.ndarray:
    """A mask or anatomy PNG in the layout of the prepared films (MONAI's PIL reader: first axis = x)."""
    from monai.transforms import LoadImage

    arr = np.asarray(LoadImage(reader="PILReader", image_only=True)(str(path)))
    if arr.shape != (image_size, image_size):
        raise ValueError(f"{path}: expected a {image_size} x {image_size} map, got {arr.shape}.")
    return arr


def load_pretrain_images(folder: str | os.PathLike, cache: str | os.PathLike, image_size: int) -> torch.Tensor:
    """All films of a simulated set, prepared, cached as float16 ``.npy`` in ``cache``."""
    cache = Path(cache)
    if cache.is_file():
        return torch.from_numpy(np.load(cache).astype(np.float32))
    from monai_afire.data import load_dataset

    records, _ = load_dataset("simcxr", folder)
    images = prepare_images([r["image"] for r in records], image_size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npy")
    np.save(tmp, images.numpy().astype(np.float16))
    os.replace(tmp, cache)
    return images


def _records(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from monai_afire.data import load_dataset

    out = []
    for split in ("train_val", "test"):
        records, classes = load_dataset("simcxr", folder, split=split)
        cols = [classes.index(f) for f in FINDINGS]
        for r in records:
            r["label"] = np.asarray(r["label"], dtype=np.float32)[cols]
            r["patient_id"] = str(r["patient_id"])
        out.append(records)
    return out[0], out[1]


def _split_records(folder: Path, val_fraction: float, seed: int) -> dict[str, list[dict[str, Any]]]:
    from monai_afire.data import holdout_split

    train_val, test = _records(folder)
    train, val = holdout_split(train_val, val_fraction, seed=seed)
    return {"train": train, "val": val, "test": test}


def _build_split(name: str, folder: Path, records: list[dict[str, Any]], image_size: int) -> dict[str, Any]:
    arrays: dict[str, Any] = {
        "images": prepare_images([r["image"] for r in records], image_size).numpy().astype(np.float16),
        "labels": np.stack([r["label"] for r in records]).astype(np.float32),
        "patients": np.asarray([r["patient_id"] for r in records]),
        "names": np.asarray([Path(r["image"]).name for r in records]),
    }
    if name != "train":
        masks = np.zeros((len(records), len(FINDINGS), image_size, image_size), dtype=bool)
        anatomy = np.zeros((len(records), image_size, image_size), dtype=np.uint8)
        for i, r in enumerate(records):
            stem = Path(r["image"]).stem
            anatomy[i] = _load_map(folder / "anatomy" / Path(r["image"]).name, image_size)
            for c, finding in enumerate(FINDINGS):
                path = folder / "masks" / f"{stem}_{finding}.png"
                if path.is_file():
                    masks[i, c] = _load_map(path, image_size) > 0
        arrays["masks"], arrays["anatomy"] = masks, anatomy
        arrays["boxes"] = np.asarray(json.dumps([r.get("boxes", []) for r in records]))
        arrays["box_labels"] = np.asarray(json.dumps([r.get("box_labels", []) for r in records]))
    return arrays


def _split_from_arrays(name: str, arrays: Any) -> Split:
    boxes = json.loads(str(arrays["boxes"])) if "boxes" in arrays else None
    box_labels = json.loads(str(arrays["box_labels"])) if "box_labels" in arrays else None
    return Split(
        name,
        torch.from_numpy(np.asarray(arrays["images"]).astype(np.float32)),
        np.asarray(arrays["labels"]),
        np.asarray(arrays["patients"]).astype(str),
        [str(n) for n in arrays["names"]],
        np.asarray(arrays["masks"]) if "masks" in arrays else None,
        np.asarray(arrays["anatomy"]) if "anatomy" in arrays else None,
        boxes,
        box_labels,
    )


class DownstreamData:
    """Labelled downstream films: ``train`` and ``val`` open, ``test`` closed until :meth:`freeze`.

    Args:
        cache_dir: folder of the prepared splits (``downstream_<split>.npz``).
        split_seed: seed of the nested label-fraction subsets.
    """

    def __init__(self, cache_dir: str | os.PathLike, split_seed: int = 0) -> None:
        self.cache_dir = Path(cache_dir)
        self.split_seed = int(split_seed)
        for split in SPLITS:
            if not self._path(split).is_file():
                raise FileNotFoundError(f"{self._path(split)} is missing; run load_downstream(...) first.")
        with np.load(self._path("train")) as f:
            self.train = _split_from_arrays("train", f)
        with np.load(self._path("val")) as f:
            self.val = _split_from_arrays("val", f)
        self.classes = list(FINDINGS)
        self._choices: Path | None = None
        self._test: Split | None = None

    def _path(self, split: str) -> Path:
        return self.cache_dir / f"downstream_{split}.npz"

    def fraction_index(self, fraction: float) -> np.ndarray:
        """Indices into ``train`` of the nested, patient-wise label-fraction subset
        (:func:`monai_afire.data.label_fraction_split`)."""
        from monai_afire.data import label_fraction_split

        records = [
            {"index": i, "label": self.train.labels[i], "patient_id": p} for i, p in enumerate(self.train.patients)
        ]
        chosen = label_fraction_split(records, float(fraction), seed=self.split_seed)
        return np.asarray([r["index"] for r in chosen], dtype=np.int64)

    @property
    def frozen(self) -> bool:
        """Whether the choices are frozen (the test split may be read)."""
        return self._choices is not None

    def freeze(self, choices_file: str | os.PathLike) -> None:
        """Open the test split; ``choices_file`` must be the written record of every choice made on validation.

        Raises:
            FileNotFoundError: the choices file does not exist.
        """
        path = Path(choices_file)
        if not path.is_file():
            raise FileNotFoundError(f"DownstreamData.freeze: the choices file {path} does not exist; write it first.")
        self._choices = path

    def test(self) -> Split:
        """The test split.

        Raises:
            ClosedTestSplit: before :meth:`freeze`.
        """
        if self._choices is None:
            raise ClosedTestSplit(
                "The test split is closed until every choice is made on validation and written down "
                "(DownstreamData.freeze(choices_file))."
            )
        if self._test is None:
            with np.load(self._path("test")) as f:
                self._test = _split_from_arrays("test", f)
        return self._test


def load_downstream(
    folder: str | os.PathLike, cache_dir: str | os.PathLike, image_size: int, val_fraction: float, seed: int = 0
) -> DownstreamData:
    """Prepare (once) and open the downstream splits of the simulated set in ``folder``.

    The test split is the generator's patient-wise ``test_list.txt``; validation holds ``val_fraction`` of the other
    patients (:func:`monai_afire.data.holdout_split`).
    """
    folder, cache_dir = Path(folder), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    splits = None
    for split in SPLITS:
        path = cache_dir / f"downstream_{split}.npz"
        if path.is_file():
            continue
        splits = splits or _split_records(folder, val_fraction, seed)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **_build_split(split, folder, splits[split], image_size))
        os.replace(tmp, path)
    return DownstreamData(cache_dir, split_seed=seed)
