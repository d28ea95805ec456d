"""Prepare radiographs once for large runs: full-size films (DICOM, PNG, JPEG, NIfTI) to training-size PNGs.

Decoding a 2-3k pixel DICOM or a 1024 x 1024 PNG costs tens of milliseconds, far more than a training step can wait
for; a training-size PNG costs about one. This command converts a folder, or the films of a data set, once::

    python -m monai_afire.data.prepare --src /data/mimic-cxr --out /data/mimic-cxr-256 --size 256 --bits 16

Each film goes through the library's own preparation (:class:`~monai_afire.transforms.LoadRadiograph` and
:class:`~monai_afire.transforms.PrepareRadiograph` without padding: MONOCHROME1 inverted, Rescale Slope/Intercept
applied, one channel, longest side ``size`` with the aspect kept, percentiles 0.5/99.5 to [0, 1]) and is stored as an
8- or 16-bit grey PNG under the same relative path with the suffix ``.png`` (``a/b/c.dcm`` becomes ``a/b/c.png``).
Reading a prepared film with ``radiograph_transforms`` gives what reading the original gives, up to the quantisation
and, when ``size`` is larger than the training size, a second resize.

The run is parallel over processes, shows a progress bar, and is resumable: every PNG is written to a temporary name
and renamed when complete, and it records the source's size and modification time, so a second run skips films
already done and redoes films whose source changed. Unreadable films are listed in ``prepare_failed.csv`` (and
counted in the summary); the others are converted. ``prepare_manifest.csv`` maps each source to its PNG with both
sizes.

Tables at the top of ``--src`` (``*.csv``, ``*.csv.gz``, ``*.txt``, ``*.json``) are copied so that the data set's
reader reads the prepared folder as it read the original: in CSV files a cell naming a converted film by its old
suffix (``.jpg``, ``.dcm``, ...) is renamed to ``.png``, and ChestX-ray14's ``BBox_List_2017.csv`` boxes are scaled to
the prepared films. See :func:`prepare_films` for which readers work unchanged.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import inspect
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

__all__ = [
    "FILM_EXTENSIONS",
    "PrepareSummary",
    "default_workers",
    "prepared_name",
    "prepare_film",
    "prepare_films",
    "main",
]

FILM_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz")
"""File endings converted by default (case-insensitive)."""

TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".txt", ".json")
"""Files at the top of the source folder copied next to the prepared films."""

MANIFEST = "prepare_manifest.csv"
FAILED = "prepare_failed.csv"
TEXT_KEY = "monai-afire-prepare"
TMP_SUFFIX = ".prepare-tmp"
NIH_BOXES = "BBox_List_2017.csv"
NIH_READERS = ("chestxray14", "nih", "simcxr")
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"

_REPORTS = (MANIFEST, FAILED)


@dataclass
class PrepareSummary:
    """What a :func:`prepare_films` run did.

    Attributes:
        out_dir: the prepared folder.
        converted: films converted in this run.
        skipped: films already prepared with the same settings from an unchanged source.
        failed: (source path relative to ``src``, error message) of every film that could not be converted.
        tables: tables copied next to the films (relative paths).
        seconds: wall time of the run.
        manifest: the manifest file (source, PNG and both sizes of every prepared film).
        report: ``prepare_failed.csv`` when some film failed, else None.
    """

    out_dir: Path
    converted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    seconds: float = 0.0
    manifest: Path | None = None
    report: Path | None = None

    def __str__(self) -> str:
        done = self.converted + self.skipped
        rate = self.converted / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"prepared {done} film(s) in {self.out_dir}: {self.converted} converted ({rate:.1f}/s), "
            f"{self.skipped} already done, {len(self.failed)} unreadable"
        )
        if self.report is not None:
            text += f" (listed in {self.report})"
        return text + "."


def _suffix(name: str, extensions: Sequence[str]) -> str:
    lower = name.lower()
    return max((e for e in extensions if lower.endswith(e.lower())), key=len, default="")


def prepared_name(relative: str | os.PathLike, extensions: Sequence[str] = FILM_EXTENSIONS) -> str:
    """The prepared film's relative path: the film suffix replaced by ``.png`` (``a/b/c.dcm`` -> ``a/b/c.png``,
    ``d.nii.gz`` -> ``d.png``); a name without a known suffix (DICOM files often have none) gets ``.png`` appended."""
    relative = Path(relative).as_posix()
    suffix = _suffix(relative, extensions)
    return (relative[: len(relative) - len(suffix)] if suffix else relative) + ".png"


def _settings(size: int, bits: int, lower: float, upper: float) -> dict[str, Any]:
    return {"size": int(size), "bits": int(bits), "lower": float(lower), "upper": float(upper)}


def _source_stamp(source: str) -> dict[str, int]:
    stat = os.stat(source)
    return {"source_bytes": int(stat.st_size), "source_mtime_ns": int(stat.st_mtime_ns)}


def _complete_png(path: str) -> bool:
    """Whether ``path`` ends with the PNG end chunk (a file cut short by a crash or a copy does not)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def _read_record(target: str) -> dict[str, Any] | None:
    """The record a complete prepared PNG carries, or None when the file is missing, cut short, unreadable or not
    ours."""
    if not _complete_png(target):
        return None
    try:
        with Image.open(target) as image:
            text = image.info.get(TEXT_KEY)
            shape = (image.width, image.height)
    except (OSError, SyntaxError, ValueError):
        return None
    try:
        record = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    record["width"], record["height"] = shape
    return record


class _Converter:
    """Loads, prepares and writes films with fixed settings (one per process)."""

    def __init__(self, size: int, bits: int, lower: float, upper: float, compress_level: int) -> None:
        from monai_afire.transforms import LoadRadiograph, PrepareRadiograph

        self.settings = _settings(size, bits, lower, upper)
        self.compress_level = int(compress_level)
        self.load = LoadRadiograph()
        self.prepare = PrepareRadiograph(size, lower, upper, pad=False)

    def done(self, source: str, target: str) -> dict[str, Any] | None:
        """The record of ``target`` when it is a finished conversion of the unchanged ``source`` with these
        settings, else None."""
        record = _read_record(target)
        if record is None:
            return None
        expected = {**self.settings, **_source_stamp(source)}
        return record if all(record.get(k) == v for k, v in expected.items()) else None

    def convert(self, source: str, target: str) -> dict[str, Any]:
        """Convert ``source`` to the PNG ``target`` atomically; returns the record written into it."""
        image = self.load(source)  # first, so that a missing film gets the loader's message
        stamp = _source_stamp(source)
        width, height = (int(v) for v in image.shape[1:])
        prepared = self.prepare(image)
        pixels = prepared[0].numpy().T  # MONAI (W, H) -> PIL rows (H, W)
        top = 255 if self.settings["bits"] == 8 else 65535
        array = np.rint(np.clip(pixels, 0.0, 1.0) * top).astype(np.uint8 if top == 255 else np.uint16)
        record = {**self.settings, **stamp, "source_width": width, "source_height": height}
        info = PngImagePlugin.PngInfo()
        info.add_text(TEXT_KEY, json.dumps(record, sort_keys=True))
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        temporary = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{os.getpid()}{TMP_SUFFIX}")
        try:
            Image.fromarray(array).save(temporary, format="PNG", pnginfo=info, compress_level=self.compress_level)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        record["width"], record["height"] = array.shape[1], array.shape[0]
        return record

    def __call__(self, job: tuple[str, str, str]) -> tuple[str, str, dict[str, Any] | None, str | None]:
        """(relative source, status ``"converted"``/``"skipped"``/``"failed"``, record, error) of one job."""
        relative, source, target = job
        try:
            record = self.done(source, target)
            if record is not None:
                return relative, "skipped", record, None
            return relative, "converted", self.convert(source, target), None
        except Exception as e:  # one bad film must not stop a run over hundreds of thousands
            return relative, "failed", None, _describe(e)


def _describe(error: BaseException) -> str:
    """The error's type and message on one line (the library's messages name the file and what was expected)."""
    return " ".join(f"{type(error).__name__}: {error}".split())


_WORKER: _Converter | None = None


def _init_worker(size: int, bits: int, lower: float, upper: float, compress_level: int) -> None:
    import torch

    global _WORKER
    torch.set_num_threads(1)  # one core per worker process
    _WORKER = _Converter(size, bits, lower, upper, compress_level)


def _run_chunk(jobs: list[tuple[str, str, str]]) -> list[tuple[str, str, dict[str, Any] | None, str | None]]:
    assert _WORKER is not None, "worker not initialised"
    return [_WORKER(job) for job in jobs]


def prepare_film(
    source: str | os.PathLike,
    target: str | os.PathLike,
    size: int = 256,
    bits: int = 8,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    compress_level: int = 6,
) -> dict[str, Any]:
    """Convert one film to a prepared PNG (written atomically).

    Args:
        source: the film (DICOM, PNG, JPEG or NIfTI).
        target: the PNG to write; its folder is created.
        size: longest side of the PNG in pixels (the aspect is kept).
        bits: 8 or 16 bits per pixel.
        lower_percentile: intensity percentile mapped to 0.
        upper_percentile: intensity percentile mapped to the largest value.
        compress_level: zlib level of the PNG, 0 (none, fastest to decode, about twice the bytes) to 9.

    Returns:
        the record stored in the PNG: settings, source size and modification time, ``source_width``,
        ``source_height`` and the PNG's ``width``/``height``.

    Raises:
        RuntimeError, ValueError: the film cannot be read (naming it), or bad settings.
    """
    _check_settings(size, bits, lower_percentile, upper_percentile, compress_level)
    converter = _Converter(size, bits, lower_percentile, upper_percentile, compress_level)
    return converter.convert(os.fspath(source), os.fspath(target))


def _check_settings(size: int, bits: int, lower: float, upper: float, compress_level: int) -> None:
    if int(size) < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size}.")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}.")
    if not 0 <= lower < upper <= 100:
        raise ValueError(f"need 0 <= lower_percentile < upper_percentile <= 100, got {lower}, {upper}.")
    if not 0 <= int(compress_level) <= 9:
        raise ValueError(f"compress_level must be 0-9, got {compress_level}.")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _folder_films(src: Path, extensions: Sequence[str], out: Path) -> list[str]:
    """Films under ``src`` (recursive, sorted), leaving out the output folder and our temporary files."""
    found = []
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not _is_within(Path(dirpath, d).resolve(), out))
        for name in sorted(files):
            if not name.endswith(TMP_SUFFIX) and _suffix(name, extensions):
                found.append(os.path.join(dirpath, name))
    return found


def _dataset_films(name: str, src: Path, reader_kwargs: Mapping[str, Any]) -> list[str]:
    """The distinct image paths of a data set's records (missing files are kept, to be listed as unreadable)."""
    from monai_afire.data.datasets import _READERS, load_csv_dataset, load_dataset

    kwargs = dict(reader_kwargs)
    reader = load_csv_dataset if name.lower() == "csv" else _READERS.get(name.lower())
    if reader is not None and "check_files" in inspect.signature(reader).parameters:
        kwargs.setdefault("check_files", False)
    records, _ = load_dataset(name, src, **kwargs)
    return list(dict.fromkeys(str(r["image"]) for r in records))


def _jobs(films: Iterable[str], src: Path, out: Path, extensions: Sequence[str]) -> tuple[list, list]:
    """(relative, source, target) jobs and (relative, error) for films outside ``src``; raises on name clashes."""
    jobs, outside, targets = [], [], {}
    for film in films:
        relative = os.path.relpath(os.path.abspath(film), src)
        if relative.startswith(os.pardir + os.sep) or relative == os.pardir or os.path.isabs(relative):
            outside.append((film, f"ValueError: the film is outside --src {src}; it cannot keep its relative path."))
            continue
        relative = Path(relative).as_posix()
        target = prepared_name(relative, extensions)
        if target in targets:
            raise ValueError(
                f"{targets[target]} and {relative} would both be prepared as {target}; rename one of them or "
                "prepare them into different folders."
            )
        targets[target] = relative
        jobs.append((relative, os.path.join(src, relative), os.path.join(out, target)))
    return jobs, outside


def _finished_results(pending: set[Future], bar: Any) -> Generator[Any, None, set[Future]]:
    """Wait for at least one of ``pending``, yield the results of the finished ones (advancing ``bar``), and return
    the futures still pending."""
    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
    for future in finished:
        results = future.result()
        bar.update(len(results))
        yield from results
    return pending


def _chunks(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files a killed run left behind."""
    for dirpath, _, files in os.walk(out):
        for name in files:
            if name.endswith(TMP_SUFFIX):
                os.remove(os.path.join(dirpath, name))


def _run(
    jobs: list[tuple[str, str, str]],
    settings: tuple,
    workers: int,
    progress: bool,
    chunk_size: int = 16,
) -> Iterator[tuple[str, str, dict[str, Any] | None, str | None]]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="film", desc="prepare", disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1:
            converter = _Converter(*settings)
            for job in jobs:
                result = converter(job)
                bar.update(1)
                yield result
            return
        chunks = _chunks(jobs, chunk_size)
        import monai_afire.transforms  # noqa: F401  (imported once here, inherited by forked workers)

        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=settings) as pool:
            pending: set[Future] = set()
            try:
                for chunk in chunks:
                    pending.add(pool.submit(_run_chunk, chunk))
                    if len(pending) >= 4 * workers:  # keep a bounded queue of submitted chunks
                        pending = yield from _finished_results(pending, bar)
                while pending:
                    pending = yield from _finished_results(pending, bar)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        bar.close()


def _rename_cell(cell: str, extensions: Sequence[str]) -> str:
    suffix = _suffix(cell, extensions)
    if not suffix or suffix == ".png" or "\n" in cell:
        return cell
    return cell[: len(cell) - len(suffix)] + ".png"


def _open_text(path: Path, mode: str):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, mode + "t", newline="", encoding="utf-8-sig" if mode == "r" else "utf-8")
    return open(path, mode, newline="", encoding="utf-8-sig" if mode == "r" else "utf-8")


def _nih_box_rows(rows: list[list[str]], sizes: Mapping[str, tuple[int, int, int, int]]) -> list[list[str]]:
    """ChestX-ray14 boxes (x, y, w, h in columns 2-5) scaled from the original films to the prepared ones."""
    out = [rows[0]]
    for row in rows[1:]:
        size = sizes.get(row[0]) if row else None
        if size is not None and len(row) >= 6:
            source_width, source_height, width, height = size
            scales = (width / source_width, height / source_height) * 2
            try:
                row = row[:2] + [f"{float(v) * s:.6g}" for v, s in zip(row[2:6], scales)] + row[6:]
            except ValueError:
                pass  # a malformed box stays as it is; the reader names it
        out.append(row)
    return out


def _copy_tables(
    src: Path, out: Path, extensions: Sequence[str], nih_sizes: Mapping[str, tuple[int, int, int, int]] | None
) -> list[str]:
    """Copy the tables at the top of ``src`` to ``out``; CSV cells naming films get the ``.png`` suffix, and with
    ``nih_sizes`` (file name -> source and prepared sizes) ChestX-ray14 boxes are scaled."""
    copied = []
    for path in sorted(src.iterdir()):
        if not path.is_file() or not _suffix(path.name, TABLE_SUFFIXES) or path.name in _REPORTS:
            continue
        target = out / path.name
        if path.name.lower().endswith((".csv", ".csv.gz")):
            with _open_text(path, "r") as f:
                rows = list(csv.reader(f))
            renamed = [[_rename_cell(cell, extensions) for cell in row] for row in rows]
            if nih_sizes is not None and path.name == NIH_BOXES and renamed:
                renamed = _nih_box_rows(renamed, nih_sizes)
            if renamed != rows:
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(renamed)
                temporary = out / f".{path.name}.{os.getpid()}{TMP_SUFFIX}"
                with _open_text(temporary, "w") as f:
                    f.write(buffer.getvalue())
                os.replace(temporary, target)
                copied.append(path.name)
                continue
        temporary = out / f".{path.name}.{os.getpid()}{TMP_SUFFIX}"
        shutil.copy2(path, temporary)
        os.replace(temporary, target)
        copied.append(path.name)
    return copied


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(temporary, path)


def default_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def prepare_films(
    src: str | os.PathLike,
    out: str | os.PathLike,
    size: int = 256,
    bits: int = 8,
    workers: int | None = None,
    dataset: str | None = None,
    reader_kwargs: Mapping[str, Any] | None = None,
    extensions: Sequence[str] = FILM_EXTENSIONS,
    lower_percentile: float = 0.5,
    upper_percentile: float = 99.5,
    compress_level: int = 6,
    copy_tables: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PrepareSummary:
    """Convert the films of a folder or of a data set to training-size PNGs with the same relative paths.

    How the prepared folder is read:

    - a folder of films (``reader="folder"`` of the pre-training bundle, :func:`~monai_afire.data.load_image_folder`):
      unchanged, point ``dataset_dir`` at ``out``;
    - ChestX-ray14 (and the simulated set): unchanged, with ``load_dataset("chestxray14", out)``; its tables are copied
      and the boxes of ``BBox_List_2017.csv`` scaled to the prepared films;
    - CheXpert: unchanged; ``train.csv``/``valid.csv`` are copied with the ``.jpg`` paths renamed ``.png``;
    - MIMIC-CXR: pass ``extension=".png"`` to :func:`~monai_afire.data.load_mimic_cxr` (the reader builds the file
      names from the table's ``dicom_id``);
    - RSNA Pneumonia and VinDr-CXR: their readers build ``.dcm``/``.dicom`` names, so they do not read the prepared
      folder; read it as a folder of films, or use a CSV table (``load_dataset("csv", ...)``).

    Args:
        src: the folder of films (searched recursively), or a data set's root with ``dataset``.
        out: the prepared folder; must not be ``src`` or lie inside it.
        size: longest side of the prepared films in pixels (the aspect is kept; training pads to a square).
        bits: 8 or 16 bits per pixel.
        workers: processes converting in parallel; default all usable cores; 0 or 1 converts in this process.
        dataset: a reader name of :func:`~monai_afire.data.load_dataset` (``"chestxray14"``, ``"chexpert"``,
            ``"mimic"``, ...) whose records name the films; None converts every film under ``src``.
        reader_kwargs: keyword arguments of the reader (e.g. ``{"extension": ".dcm"}`` for MIMIC-CXR).
        extensions: film suffixes converted in folder mode (also the suffixes renamed in tables).
        lower_percentile: intensity percentile mapped to 0.
        upper_percentile: intensity percentile mapped to the largest value.
        compress_level: zlib level of the PNGs, 0-9 (0 decodes fastest but is about twice the bytes).
        copy_tables: copy the tables at the top of ``src`` (renaming film suffixes, scaling ChestX-ray14 boxes).
        progress: show a tqdm progress bar.
        log: called with one line of summary (e.g. ``print``).

    Returns:
        a :class:`PrepareSummary`.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ValueError: bad settings, ``out`` inside ``src``, no film found, or two films that would get the same name.
    """
    started = time.perf_counter()
    _check_settings(size, bits, lower_percentile, upper_percentile, compress_level)
    src_path = Path(src).expanduser().resolve()
    out_path = Path(out).expanduser().resolve()
    if not src_path.exists():
        raise FileNotFoundError(f"--src {src_path} does not exist.")
    root = src_path if src_path.is_dir() else src_path.parent  # the "csv" reader takes the table file
    if dataset is None and not src_path.is_dir():
        raise ValueError(f"--src {src_path} is not a folder; pass a folder of films, or --dataset with its root.")
    if out_path == root or _is_within(out_path, root):
        raise ValueError(f"--out {out_path} must not be --src {root} or lie inside it; choose a separate folder.")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}.")
    extensions = tuple(e if e.startswith(".") else "." + e for e in extensions)
    films = (
        _folder_films(src_path, extensions, out_path)
        if dataset is None
        else _dataset_films(dataset, src_path, reader_kwargs or {})
    )
    if not films:
        where = f"under {src_path} with endings {list(extensions)}" if dataset is None else f"in data set {dataset!r}"
        raise ValueError(f"no film found {where}.")
    jobs, failed = _jobs(films, root, out_path, extensions)
    out_path.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_path)
    summary = PrepareSummary(out_dir=out_path, failed=list(failed))
    manifest_rows = []
    settings = (int(size), int(bits), float(lower_percentile), float(upper_percentile), int(compress_level))
    count = default_workers() if workers is None else workers
    for relative, status, record, error in _run(jobs, settings, min(count, len(jobs)), progress):
        if status == "failed":
            summary.failed.append((relative, error or "unknown error"))
            continue
        assert record is not None
        if status == "skipped":
            summary.skipped += 1
        else:
            summary.converted += 1
        manifest_rows.append(
            (
                relative,
                prepared_name(relative, extensions),
                record.get("source_width"),
                record.get("source_height"),
                record["width"],
                record["height"],
            )
        )
    manifest_rows.sort()
    summary.manifest = out_path / MANIFEST
    _write_csv(summary.manifest, ("source", "image", "source_width", "source_height", "width", "height"), manifest_rows)
    report = out_path / FAILED
    if summary.failed:
        summary.failed.sort()
        _write_csv(report, ("source", "error"), summary.failed)
        summary.report = report
    elif report.exists():
        report.unlink()  # a stale list from an earlier run
    if copy_tables:
        nih_sizes = None
        if dataset is not None and dataset.lower() in NIH_READERS:
            nih_sizes = {Path(r[1]).name: (int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in manifest_rows}
        summary.tables = _copy_tables(root, out_path, extensions, nih_sizes)
    summary.seconds = time.perf_counter() - started
    if log is not None:
        log(str(summary))
    return summary


def _reader_argument(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_afire.data.prepare",
        description=(
            "Convert radiographs (DICOM with MONOCHROME1 and rescale handled, PNG, JPEG, NIfTI) to training-size grey "
            "PNGs with the same relative paths (a/b/c.dcm -> a/b/c.png), prepared as the training pipeline prepares "
            "them (MONOCHROME1 inverted, one channel, longest side --size, percentiles 0.5/99.5 to the full range). "
            "Parallel, resumable (films already done are skipped), unreadable films listed in "
            f"OUT/{FAILED}; OUT/{MANIFEST} maps every source to its PNG and sizes."
        ),
    )
    parser.add_argument("--src", required=True, help="folder of films (searched recursively), or a data set's root")
    parser.add_argument("--out", required=True, help="output folder (not --src nor inside it); created if needed")
    parser.add_argument(
        "--size", type=int, default=256, help="longest side of the prepared films in pixels (default: %(default)s)"
    )
    parser.add_argument(
        "--bits", type=int, choices=(8, 16), default=8, help="bits per pixel of the PNGs (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="parallel processes; default: all usable cores; 0 or 1: no pool"
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help="convert the films named by this data set reader of monai_afire.data.load_dataset (chestxray14, "
        "simcxr, chexpert, mimic, rsna, vindr, csv) instead of every film under --src; tables are copied so that "
        "the same reader reads --out",
    )
    parser.add_argument(
        "--reader-arg",
        action="append",
        default=[],
        type=_reader_argument,
        metavar="KEY=VALUE",
        help="keyword argument of the --dataset reader (VALUE parsed as JSON when it can be), e.g. extension=.dcm; "
        "repeatable",
    )
    parser.add_argument(
        "--extensions",
        nargs="+",
        default=list(FILM_EXTENSIONS),
        help="film endings converted when no --dataset is given, case-insensitive (default: %(default)s)",
    )
    parser.add_argument(
        "--lower-percentile",
        type=float,
        default=0.5,
        help="intensity percentile mapped to black (default: %(default)s)",
    )
    parser.add_argument(
        "--upper-percentile",
        type=float,
        default=99.5,
        help="intensity percentile mapped to white (default: %(default)s)",
    )
    parser.add_argument(
        "--compress-level",
        type=int,
        default=6,
        help="PNG zlib level 0-9; 0 decodes fastest but takes about 2x the bytes (default: %(default)s)",
    )
    parser.add_argument("--no-tables", action="store_true", help="do not copy the CSV/TXT/JSON tables of --src")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when any film could not be read")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 with ``--strict`` when a film failed)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        summary = prepare_films(
            args.src,
            args.out,
            size=args.size,
            bits=args.bits,
            workers=args.workers,
            dataset=args.dataset,
            reader_kwargs=dict(args.reader_arg),
            extensions=args.extensions,
            lower_percentile=args.lower_percentile,
            upper_percentile=args.upper_percentile,
            compress_level=args.compress_level,
            copy_tables=not args.no_tables,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    print(summary)
    if summary.failed:
        shown = summary.failed[:5]
        for relative, error in shown:
            print(f"  unreadable: {relative}: {error}", file=sys.stderr)
        if len(summary.failed) > len(shown):
            print(f"  ... and {len(summary.failed) - len(shown)} more in {summary.report}", file=sys.stderr)
    return 1 if args.strict and summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
