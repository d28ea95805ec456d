"""Images per CPU-second of one loader worker for the whole pre-training input chain, from files on disk.

The chain is the one the pre-training bundle runs in every DataLoader worker,
``monai_afire.apps.pretraining_transforms(224)``: decode the file, prepare it (MONOCHROME1 inversion, one channel,
longest side to 224, percentiles to [0, 1], pad), add the Synthetic Lesion Mask, make tensors; then MONAI's
``list_data_collate`` makes batches. Inputs, all written from the real film ``RG1_UNCR.dcm`` of pydicom-data (CR,
1955 x 1841, MONOCHROME1; each copy with its own noise, shift and contrast, so no two files are equal):

- training-size PNGs made by ``python -m monai_afire.data.prepare`` (256 px 8- and 16-bit, 224 px 8-bit);
- full-size films: 1024 x 1024 8-bit PNGs (ChestX-ray14), 2500 px JPEGs (CheXpert, MIMIC-CXR-JPG) and 2500 px
  uncompressed 16-bit MONOCHROME1 DICOMs (MIMIC-CXR, RSNA; compressed DICOMs decode slower).

The machine is shared, so the measure is CPU time, not wall time: one process, ``torch.set_num_threads(1)``,
``time.process_time`` around every stage of every image (decode / prepare / lesion / to tensor) and around each
collate; images per CPU-second = images/s that one loader core delivers. Wall-clock images/s of the same loop are
printed beside it. Each number is the median over ``--rounds`` rounds. Target: >= 300 images per CPU-second from
training-size files, so that 8 loader workers feed >= 2,290 images/s. ``--loader-workers N`` also runs a real MONAI
DataLoader with N worker processes over the 256 px 8-bit PNGs and reports images per CPU-second of its workers
(``getrusage(RUSAGE_CHILDREN)``: decode to shared-memory batches, pickling included).

Usage::

    python benchmarks/data_pipeline.py --out benchmarks/results/data_pipeline.md
    python benchmarks/data_pipeline.py --quick                  # fewer images and rounds, about a minute
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["Case", "make_films", "measure", "main"]

TARGET = 300.0
STAGES = ("decode", "prepare", "lesion", "to tensor", "collate")
DEVICE_STAGE = "batched lesion"


@dataclass
class Case:
    """One kind of input file: a label, its files and how they were made."""

    label: str
    files: list[str]
    note: str = ""
    bytes_per_file: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.bytes_per_file = float(np.mean([Path(f).stat().st_size for f in self.files]))


def real_film() -> np.ndarray:
    """The stored pixels (rows, columns) of RG1_UNCR.dcm, as float32."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    if path is None:
        sys.exit("data_pipeline.py needs pydicom-data (pip install pydicom-data) for the film RG1_UNCR.dcm.")
    return pydicom.dcmread(path).pixel_array.astype(np.float32)


def variant(film: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    """``film`` resized to ``shape`` (rows, columns) with its own shift, contrast and noise; values as the film."""
    rng = np.random.default_rng(seed)
    tensor = torch.from_numpy(film)[None, None]
    resized = torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear", antialias=True)[0, 0].numpy()
    shift = rng.integers(-shape[0] // 40, shape[0] // 40 + 1, size=2)
    resized = np.roll(resized, tuple(int(s) for s in shift), axis=(0, 1))
    low, high = float(film.min()), float(film.max())
    out = low + (resized - low) * rng.uniform(0.9, 1.05) + rng.normal(0, 0.01 * (high - low), size=shape)
    return np.clip(out, low, high).astype(np.float32)


def write_dicom(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit (12 stored) uncompressed MONOCHROME1 CR film."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"
    ds.PixelData = np.clip(pixels, 0, 4095).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def to_uint8(pixels: np.ndarray, invert: bool) -> np.ndarray:
    low, high = np.percentile(pixels, (0.5, 99.5))
    scaled = np.clip((pixels - low) / (high - low), 0, 1)
    return np.rint(255 * (1 - scaled if invert else scaled)).astype(np.uint8)


def make_films(folder: Path, full: int, training: int) -> list[Case]:
    """Write the benchmark's files under ``folder`` (reused when present); returns the cases."""
    from PIL import Image

    film = real_film()
    rows, cols = film.shape
    dicom_shape = (2500, int(round(2500 * cols / rows)))  # 2500 x 2354
    folders = {name: folder / name for name in ("dicom", "png1024", "jpeg", "dicom_small")}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    for i in range(max(full, training)):
        # the small DICOMs only feed the training-size PNGs
        target = folders["dicom_small"] / f"film{i:03d}.dcm"
        if not target.exists():
            write_dicom(target, variant(film, (1024, int(round(1024 * cols / rows))), seed=1000 + i))
        if i >= full:
            continue
        target = folders["dicom"] / f"film{i:03d}.dcm"
        if not target.exists():
            write_dicom(target, variant(film, dicom_shape, seed=i))
        target = folders["png1024"] / f"film{i:03d}.png"
        if not target.exists():
            Image.fromarray(to_uint8(variant(film, (1024, 1024), seed=100 + i), invert=True)).save(target)
        target = folders["jpeg"] / f"film{i:03d}.jpg"
        if not target.exists():
            Image.fromarray(to_uint8(variant(film, dicom_shape, seed=200 + i), invert=True)).save(target, quality=95)
    prepared = {}
    for size, bits in ((256, 8), (256, 16), (224, 8)):
        out = folder / f"prepared{size}_{bits}bit"
        if len(list(out.glob("*.png"))) < training:
            from monai_afire.data.prepare import prepare_films

            prepare_films(folders["dicom_small"], out, size=size, bits=bits, workers=1, progress=False)
        prepared[size, bits] = sorted(str(p) for p in out.rglob("*.png"))[:training]

    def listing(name: str, pattern: str) -> list[str]:
        return sorted(str(p) for p in folders[name].glob(pattern))[:full]

    return [
        Case("prepared 256 px PNG, 8-bit", prepared[256, 8], "training size (prepare --size 256 --bits 8)"),
        Case("prepared 256 px PNG, 16-bit", prepared[256, 16], "training size (prepare --size 256 --bits 16)"),
        Case("prepared 224 px PNG, 8-bit", prepared[224, 8], "training size = model size, no resize"),
        Case("1024 x 1024 PNG, 8-bit", listing("png1024", "*.png"), "ChestX-ray14 films"),
        Case(f"{dicom_shape[0]} x {dicom_shape[1]} JPEG, 8-bit", listing("jpeg", "*.jpg"), "CheXpert / MIMIC-CXR-JPG"),
        Case(
            f"{dicom_shape[0]} x {dicom_shape[1]} DICOM, 12-bit MONOCHROME1",
            listing("dicom", "*.dcm"),
            "MIMIC-CXR / RSNA, uncompressed",
        ),
    ]


def flatten(transform) -> list:
    """The leaf transforms of nested MONAI Compose objects, in order."""
    inner = getattr(transform, "transforms", None)
    if inner is None:
        return [transform]
    return [leaf for t in inner for leaf in flatten(t)]


def stage_of(transform) -> str:
    name = type(transform).__name__
    if name.startswith("LoadRadiograph") or name.startswith("LoadImage"):
        return "decode"
    if "Lesion" in name:
        return "lesion"
    if name.startswith(("EnsureType", "ToTensor")):
        return "to tensor"
    return "prepare"


@dataclass
class Round:
    """CPU milliseconds per image of each stage, and the wall time of one round."""

    stage_ms: dict[str, float]
    images: int
    wall_s: float

    @property
    def cpu_ms(self) -> float:
        """CPU time per image in the loader worker (the batched lesion runs on the training device instead)."""
        return sum(v for k, v in self.stage_ms.items() if k != DEVICE_STAGE)


def one_round(
    files: Sequence[str], steps: list, collate: Callable, images: int, batch: int, on_batch: Callable | None = None
) -> Round:
    """Run the chain over ``images`` images (cycling through ``files``), timing each stage in CPU time; ``on_batch``
    (the batched lesion) is applied to every collated batch and timed on its own."""
    totals = dict.fromkeys((*STAGES, DEVICE_STAGE), 0.0)
    pending = []
    clock = time.process_time
    wall = time.perf_counter()
    for i in range(images):
        data = {"image": files[i % len(files)]}
        for stage, step in steps:
            start = clock()
            data = step(data)
            totals[stage] += clock() - start
        pending.append(data)
        if len(pending) == batch or i == images - 1:
            start = clock()
            collated = collate(pending)
            totals["collate"] += clock() - start
            if on_batch is not None:
                start = clock()
                on_batch(collated)
                totals[DEVICE_STAGE] += clock() - start
            pending = []
    wall = time.perf_counter() - wall
    return Round({k: v / images * 1e3 for k, v in totals.items()}, images, wall)


def worker_chain(image_size: int, device_lesion: bool):
    """The DataLoader transforms: ``pretraining_transforms`` or, with the lesion on the device, the same without it
    (and the batched lesion to apply to each batch)."""
    from monai.transforms import Compose, EnsureTyped

    from monai_afire.apps import pretraining_transforms
    from monai_afire.transforms import radiograph_transforms

    if not device_lesion:
        return pretraining_transforms(image_size), None
    from monai_afire.transforms import RandSyntheticLesionBatchd

    chain = Compose([radiograph_transforms(image_size), EnsureTyped(keys="image", track_meta=False)])
    return chain, RandSyntheticLesionBatchd(keys="image")


def measure(
    case: Case, image_size: int, images: int, rounds: int, batch: int, device_lesion: bool = False, seed: int = 0
) -> dict[str, float]:
    """Median over ``rounds`` of each stage's CPU ms per image, images per CPU-second and wall images/s."""
    from monai.data import list_data_collate

    chain, on_batch = worker_chain(image_size, device_lesion)
    chain.set_random_state(seed)
    if on_batch is not None:
        on_batch.set_random_state(seed)
    steps = [(stage_of(t), t) for t in flatten(chain)]
    one_round(case.files, steps, list_data_collate, min(images, 4), batch, on_batch)  # warm-up
    results = [one_round(case.files, steps, list_data_collate, images, batch, on_batch) for _ in range(rounds)]
    out = {stage: statistics.median(r.stage_ms[stage] for r in results) for stage in (*STAGES, DEVICE_STAGE)}
    out["cpu_ms"] = statistics.median(r.cpu_ms for r in results)
    out["per_cpu_s"] = statistics.median(1e3 / r.cpu_ms for r in results)
    out["wall_per_s"] = statistics.median(r.images / r.wall_s for r in results)
    return out


def loader_check(
    files: Sequence[str], image_size: int, workers: int, images: int, batch: int, device_lesion: bool
) -> dict[str, float]:
    """A real MONAI DataLoader with ``workers`` processes: images per CPU-second of the workers, and wall images/s."""
    from monai.data import DataLoader, Dataset

    chain, _ = worker_chain(image_size, device_lesion)
    records = [{"image": files[i % len(files)]} for i in range(images)]
    loader = DataLoader(Dataset(records, chain), batch_size=batch, num_workers=workers, drop_last=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    seen = sum(len(b["image"]) for b in loader)  # workers exit (and are reaped) when the loop ends
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"images": seen, "cpu_s": cpu, "per_cpu_s": seen / cpu, "wall_per_s": seen / wall}


class _MonaiLoad:
    """The loading before this work: MONAI's ``LoadImage`` with ``PILReader`` (what ``LoadRadiograph`` did)."""

    def __init__(self) -> None:
        from monai_afire.transforms import LoadRadiograph

        self.reference = LoadRadiograph()

    def __call__(self, data: dict) -> dict:
        image = self.reference.loader(data["image"], reader=self.reference.pil)
        if not bool(torch.isfinite(image.as_tensor()).all()):
            raise ValueError("not finite")
        return {**data, "image": image}


def ablation_chains(image_size: int) -> list[tuple[str, object, object]]:
    """(label, worker chain, batched lesion or None): the chain before this work and after each change."""
    from monai.transforms import (
        Compose,
        EnsureTyped,
        Resized,
        ScaleIntensityRangePercentilesd,
        SpatialPadd,
    )

    from monai_afire.transforms import (
        InvertMonochrome1d,
        LoadRadiographd,
        PrepareRadiographd,
        RandSyntheticLesionBatchd,
        RandSyntheticLesiond,
        ScaleIntensityPercentilesd,
        ToGrayscaled,
    )

    keys = ("image", "clean", "lesion_mask")

    def monai_steps(scaler) -> list:
        return [
            InvertMonochrome1d("image"),
            ToGrayscaled("image"),
            Resized("image", spatial_size=image_size, size_mode="longest", mode="area"),
            scaler,
            SpatialPadd("image", spatial_size=(image_size, image_size)),
        ]

    old_scaler = ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True)
    new_scaler = ScaleIntensityPercentilesd("image", lower=0.5, upper=99.5)
    lesion = [RandSyntheticLesiond(keys="image"), EnsureTyped(keys=keys, track_meta=False)]
    return [
        (
            "before: MONAI LoadImage, Resized, ScaleIntensityRangePercentilesd, SpatialPadd",
            Compose([_MonaiLoad(), *monai_steps(old_scaler), *lesion]),
            None,
        ),
        (
            "+ percentiles by selection (ScaleIntensityPercentilesd)",
            Compose([_MonaiLoad(), *monai_steps(new_scaler), *lesion]),
            None,
        ),
        (
            "+ one-pass PrepareRadiographd",
            Compose([_MonaiLoad(), PrepareRadiographd("image", image_size), *lesion]),
            None,
        ),
        (
            "+ direct PIL loading (LoadRadiographd now)",
            Compose([LoadRadiographd("image"), PrepareRadiographd("image", image_size), *lesion]),
            None,
        ),
        (
            "+ lesion on the device (RandSyntheticLesionBatchd)",
            Compose(
                [
                    LoadRadiographd("image"),
                    PrepareRadiographd("image", image_size),
                    EnsureTyped(keys="image", track_meta=False),
                ]
            ),
            RandSyntheticLesionBatchd(keys="image"),
        ),
    ]


def ablation(files: Sequence[str], image_size: int, images: int, rounds: int, batch: int) -> list[tuple[str, float]]:
    """Images per worker CPU-second of each chain of :func:`ablation_chains`, rounds alternating between chains."""
    from monai.data import list_data_collate

    chains = ablation_chains(image_size)
    prepared = []
    for label, chain, on_batch in chains:
        chain.set_random_state(0)
        if on_batch is not None:
            on_batch.set_random_state(0)
        steps = [(stage_of(t), t) for t in flatten(chain)]
        one_round(files, steps, list_data_collate, 4, batch, on_batch)  # warm-up
        prepared.append((label, steps, on_batch))
    rates: dict[str, list[float]] = {label: [] for label, _, _ in prepared}
    for _ in range(rounds):
        for label, steps, on_batch in prepared:
            rates[label].append(1e3 / one_round(files, steps, list_data_collate, images, batch, on_batch).cpu_ms)
    return [(label, statistics.median(values)) for label, values in rates.items()]


def prepare_rate(files: Sequence[str], folder: Path, rounds: int) -> float:
    """Films per CPU-second of ``prepare_film`` (256 px, 8-bit) on ``files``, median over ``rounds``."""
    from monai_afire.data.prepare import prepare_film

    rates = []
    for r in range(rounds):
        start = time.process_time()
        for i, film in enumerate(files):
            prepare_film(film, folder / f"round{r}" / f"{i}.png", size=256, bits=8)
        rates.append(len(files) / (time.process_time() - start))
    return statistics.median(rates)


def has_device_lesion() -> bool:
    try:
        from monai_afire.transforms import RandSyntheticLesionBatchd  # noqa: F401
    except ImportError:  # an older monai-afire (the "before" runs)
        return False
    return True


def fidelity(source: str, prepared: str, image_size: int) -> tuple[float, float]:
    """Mean and largest |difference| at ``image_size`` between the pipeline on a film and on its prepared PNG."""
    from monai_afire.transforms import radiograph_transforms

    prepare = radiograph_transforms(image_size)
    a = prepare({"image": source})["image"].numpy()
    b = prepare({"image": prepared})["image"].numpy()
    return float(np.abs(a - b).mean()), float(np.abs(a - b).max())


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="where the films are written (reused); temp dir")
    parser.add_argument("--image-size", type=int, default=224, help="side of the prepared films (default 224)")
    parser.add_argument("--images", type=int, default=256, help="images per round for training-size files")
    parser.add_argument("--full-images", type=int, default=16, help="images per round for full-size films")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per measurement; the median is reported")
    parser.add_argument("--batch", type=int, default=32, help="images per collated batch")
    parser.add_argument("--files", type=int, default=64, help="distinct training-size files")
    parser.add_argument("--full-files", type=int, default=4, help="distinct full-size films of each kind")
    parser.add_argument("--loader-workers", type=int, default=2, help="real DataLoader check; 0 skips it")
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    parser.add_argument("--no-ablation", action="store_true", help="skip the before/after table of each change")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.full_images, args.rounds, args.files, args.full_files = 64, 4, 3, 16, 2
    torch.set_num_threads(1)
    command = "python benchmarks/data_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    device = has_device_lesion()
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.data_dir or Path(temporary)
        made = time.perf_counter()
        cases = make_films(folder, args.full_files, args.files)
        made = time.perf_counter() - made
        load_before = load_average()
        rows = []
        for index, case in enumerate(cases):
            training = index < 3
            count = args.images if training else args.full_images
            for on_device in (False, True) if device and training else (False,):
                result = measure(case, args.image_size, count, args.rounds, args.batch, device_lesion=on_device)
                rows.append((case, training, on_device, result))
                where = "lesion on the device" if on_device else "lesion in the worker"
                print(f"{case.label}, {where}: {result['per_cpu_s']:.0f} images per CPU-second", file=sys.stderr)
        loaders = []
        if args.loader_workers > 0:
            for on_device in (False, True) if device else (False,):
                check = loader_check(
                    cases[0].files, args.image_size, args.loader_workers, 4 * args.images, args.batch, on_device
                )
                loaders.append((on_device, check))
        steps = None
        if device and not args.no_ablation:
            steps = ablation(cases[0].files, args.image_size, args.images, args.rounds, args.batch)
        conversions = []
        if device:  # the prepare command exists
            for case in cases[3:]:
                conversions.append((case, prepare_rate(case.files, folder / "prepare_rate", max(1, args.rounds // 2))))
        close = {}
        for index, label in ((0, "256 px 8-bit"), (1, "256 px 16-bit"), (2, "224 px 8-bit")):
            prepared = cases[index].files[0]
            source = str(folder / "dicom_small" / Path(prepared).with_suffix(".dcm").name)
            close[label] = fidelity(source, prepared, args.image_size)
        load_after = load_average()
    lines = [
        "# benchmarks/data_pipeline.py results",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine()}, torch {torch.__version__}, 1 thread; load average {load_before} before, "
        f"{load_after} after (a shared machine: CPU time per image is the measure, wall time is shown for reference). "
        f"Median of {args.rounds} rounds of {args.images} training-size / {args.full_images} full-size images "
        f"({args.files} / {args.full_files} distinct files per kind), batches of {args.batch}; the chain is "
        f"`pretraining_transforms({args.image_size})` with its default lesion settings. Films written in {made:.0f} s.",
        "",
        "Lesion in the worker: the chain as the bundle runs it. Lesion on the device: the worker chain without "
        "`RandSyntheticLesiond`, and `RandSyntheticLesionBatchd` applied to each collated batch on the training "
        "device; its cost on this CPU is shown in the last column but is not the worker's (on a GPU it is a few "
        "tensor operations per batch)."
        if device
        else "",
        "",
        "| input | lesion | KB/file | decode ms | prepare ms | lesion ms | to tensor ms | collate ms "
        "| worker CPU ms/image | images per CPU-second | wall images/s | target >= 300/core "
        "| batched lesion, this CPU, ms/image |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, training, on_device, r in rows:
        verdict = ("met" if r["per_cpu_s"] >= TARGET else "missed") if training else "(full size: prepare first)"
        lines.append(
            f"| {case.label} ({case.note}) | {'device' if on_device else 'worker'} | {case.bytes_per_file / 1024:.0f} "
            f"| {r['decode']:.3f} | {r['prepare']:.3f} | {r['lesion']:.3f} | {r['to tensor']:.3f} "
            f"| {r['collate']:.3f} | {r['cpu_ms']:.3f} | **{r['per_cpu_s']:.0f}** | {r['wall_per_s']:.0f} | {verdict} "
            f"| {r[DEVICE_STAGE]:.3f} |"
        )
    lines.append("")
    for _, _, on_device, r in rows[: 2 if device else 1]:
        where = "on the device" if on_device else "in the workers"
        lines.append(
            f"8 loader workers at the 256 px 8-bit rate, lesion {where}: {8 * r['per_cpu_s']:,.0f} images/s "
            "(the GPU target needs 2,290)."
        )
    for on_device, check in loaders:
        lines += [
            "",
            f"Real MONAI DataLoader, {args.loader_workers} worker processes, 256 px 8-bit PNGs, batch {args.batch}, "
            f"lesion {'on the device (not run here)' if on_device else 'in the workers'}: {check['images']} images, "
            f"{check['cpu_s']:.2f} CPU-s in the workers = **{check['per_cpu_s']:.0f} images per CPU-second** "
            f"(worker start-up and pickling to the main process included); {check['wall_per_s']:.0f} images/s wall "
            "on this shared machine.",
        ]
    if steps is not None:
        lines += [
            "",
            "Before/after of each change, 256 px 8-bit PNGs, the chains taking turns in every round (median images "
            "per worker CPU-second):",
            "",
            "| chain | images per CPU-second | x before |",
            "|---|---|---|",
        ]
        lines += [f"| {label} | {rate:.0f} | {rate / steps[0][1]:.2f} |" for label, rate in steps]
    if conversions:
        lines += [
            "",
            "`python -m monai_afire.data.prepare --size 256 --bits 8` (one film at a time in this process, PNG write "
            "included; the command runs one such process per core):",
            "",
            "| films | films per CPU-second | hours for 811,170 films on 16 cores |",
            "|---|---|---|",
        ]
        lines += [f"| {case.label} | {rate:.1f} | {811170 / rate / 16 / 3600:.1f} |" for case, rate in conversions]
    lines += [
        "",
        f"Prepared vs original film through the pipeline at {args.image_size} px without lesion (mean / largest "
        "|difference| in [0, 1] units; the film a 1024 px DICOM): "
        + ", ".join(f"prepared at {label} {m:.4f} / {x:.4f}" for label, (m, x) in close.items())
        + ". Preparing at the training size leaves only quantisation and the re-applied percentile stretch; preparing "
        "larger adds a second resize (and percentiles taken at the other size), about 1% mean, more at sharp edges.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
