"""An up-front check of a data set's image files: every file exists and its header reads (no pixel decoding).

A film that cannot be read otherwise stops a run in the middle of an epoch, hours in. The check opens each file the
cheap way its format allows: PNG/JPEG/BMP/TIFF with PIL's lazy ``Image.open`` (the header only), DICOM with
``pydicom.dcmread(stop_before_pixels=True)`` (and checks that it describes an image), NIfTI with nibabel (the header
only). Files are checked in a few threads, as the work is mostly waiting for the disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["check_image_file", "find_unreadable", "check_records", "reader_kwargs_for_check"]

logger = logging.getLogger(__name__)

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _check_pil(path: str) -> None:
    from PIL import Image

    with Image.open(path) as image:  # lazy: reads the header, decodes nothing
        width, height = image.size
    if width < 1 or height < 1:
        raise ValueError(f"empty image ({width} x {height} pixels)")


def _check_nifti(path: str) -> None:
    import nibabel as nib

    shape = nib.load(path).header.get_data_shape()  # the header only; the voxels stay on disk
    if not shape or min(shape) < 1:
        raise ValueError(f"empty image (shape {tuple(shape)})")


def _check_dicom(path: str) -> None:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)  # the header; the pixel data is not read
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if rows is None or cols is None:
        raise ValueError("no image in this DICOM file (no Rows/Columns)")
    if int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"empty image ({cols} x {rows} pixels)")


def check_image_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as a radiograph, or None when its header reads.

    The reader is chosen by the file name as in :class:`~monai_afire.transforms.LoadRadiograph`: PIL for PNG, JPEG,
    BMP and TIFF, nibabel for ``.nii``/``.nii.gz``, pydicom for everything else. Only headers are read.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a file"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    name = path.lower()
    check: Callable[[str], None]
    if name.endswith(PIL_SUFFIXES):
        check, kind = _check_pil, "PNG/JPEG"
    elif name.endswith(NIFTI_SUFFIXES):
        check, kind = _check_nifti, "NIfTI"
    else:
        check, kind = _check_dicom, "DICOM"
    try:
        check(path)
    except Exception as e:  # every reader has its own exception types: each one means "unreadable"
        return f"not a readable {kind} file ({type(e).__name__}: {e})"
    return None


def find_unreadable(
    paths: Sequence[str | os.PathLike], num_threads: int = 8, progress: bool | None = None
) -> list[tuple[str, str]]:
    """``(path, reason)`` for every file of ``paths`` whose header does not read (see :func:`check_image_file`).

    Args:
        paths: the files.
        num_threads: threads reading headers at once.
        progress: show a progress bar (tqdm); None shows one for more than 2,000 files.
    """
    paths = [os.fspath(p) for p in paths]
    if progress is None:
        progress = len(paths) > 2000
    with ThreadPoolExecutor(max_workers=max(1, int(num_threads))) as pool:
        results = pool.map(check_image_file, paths)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(paths), desc="checking image files", unit="file")
        reasons = list(results)
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def check_records(
    records: Sequence[dict[str, Any]],
    skip_unreadable: bool = False,
    keys: Sequence[str] = ("image",),
    what: str = "data set",
    num_threads: int = 8,
    max_listed: int = 50,
) -> list[dict[str, Any]]:
    """Check the files of ``records`` up front (each file exists and its header reads) and name every bad one.

    Args:
        records: MONAI-style dicts; ``keys`` hold file paths (records without the key are not checked).
        skip_unreadable: leave the records with an unreadable file out (their count and names are logged) instead
            of raising.
        keys: the keys holding files.
        what: the name of the data in messages (e.g. ``"training data"``).
        num_threads: threads reading headers at once.
        max_listed: at most this many bad files are listed in the message (all are counted).

    Returns:
        the records whose files all read (all of them when none is bad).

    Raises:
        ValueError: some files are unreadable and ``skip_unreadable`` is False (each bad file named, with why), or
            every file is unreadable.
    """
    paths = sorted({str(r[k]) for r in records for k in keys if r.get(k) is not None})
    bad = dict(find_unreadable(paths, num_threads=num_threads))
    if not bad:
        return list(records)
    listed = "\n".join(f"  {p}: {why}" for p, why in list(bad.items())[:max_listed])
    more = f"\n  ... and {len(bad) - max_listed} more" if len(bad) > max_listed else ""
    kept = [r for r in records if not any(str(r.get(k)) in bad for k in keys if r.get(k) is not None)]
    if not skip_unreadable:
        raise ValueError(
            f"{len(bad)} of the {len(paths)} image files of the {what} cannot be read:\n{listed}{more}\n"
            "Fix or remove them, or set skip_unreadable to true (--skip_unreadable true) to train on the others."
        )
    if not kept:
        raise ValueError(f"none of the {len(paths)} image files of the {what} can be read:\n{listed}{more}")
    logger.warning(
        f"skip_unreadable: left out {len(records) - len(kept)} of {len(records)} records of the {what} "
        f"({len(bad)} unreadable files):\n{listed}{more}"
    )
    return kept


def reader_kwargs_for_check(reader: str, reader_kwargs: dict[str, Any] | None, check_images: bool) -> dict[str, Any]:
    """The reader's arguments when :func:`check_records` runs after it: the reader's own missing-file check (which
    stops at the first missing file) is turned off, so the up-front check names every missing file and
    ``skip_unreadable`` can leave them out. An explicit ``check_files`` in ``reader_kwargs`` is kept."""
    import inspect

    from monai_afire.data.datasets import dataset_reader

    kwargs = dict(reader_kwargs or {})
    if check_images and "check_files" in inspect.signature(dataset_reader(reader)).parameters:
        kwargs.setdefault("check_files", False)
    return kwargs
