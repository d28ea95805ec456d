"""Patient-wise splits: label-fraction subsets (1 %, 10 %, 100 %), hold-out sets, and split lists on disk."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["holdout_split", "label_fraction_split", "write_split_list", "read_split_list"]


def _check_records(records: Any, caller: str) -> None:
    """Refuse anything but a sequence of record dicts, naming the usual slip: passing ``load_dataset``'s pair."""
    if isinstance(records, tuple) and len(records) == 2 and all(isinstance(c, str) for c in records[1]):
        raise TypeError(
            f"{caller}: got a (records, classes) pair; load_dataset returns both, so unpack it first: "
            "records, classes = load_dataset(...)"
        )
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise TypeError(f"{caller}: records[{i}] is a {type(rec).__name__}, expected a record dict.")


def _groups(records: Sequence[dict[str, Any]], group_by: str | None) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, rec in enumerate(records):
        if group_by is None:
            key = i
        elif group_by not in rec:
            raise ValueError(f"Record {i} ({rec.get('image', '?')}) has no key {group_by!r} to group by.")
        else:
            key = rec[group_by]
        groups.setdefault(key, []).append(i)
    return groups


def label_fraction_split(
    records: Sequence[dict[str, Any]],
    fraction: float,
    seed: int = 0,
    group_by: str | None = "patient_id",
    label_key: str = "label",
) -> list[dict[str, Any]]:
    """Take a labelled training subset of about ``fraction`` of the images, whole patients at a time.

    Patients are shuffled once by ``seed`` and taken in that order until the subset holds
    ``ceil(fraction * len(records))`` images. Then, for every class with a positive in ``records`` but none
    in the subset, the first patient (in the same order) with a positive is added. Because the order only
    depends on the seed, the subsets are nested: the 1 % subset lies inside the 10 % one, which lies inside
    the 100 % one (all records). Records keep their original order.

    Args:
        records: reader output (the training part only: test images must not be passed here).
        fraction: in (0, 1].
        seed: seed of the patient order.
        group_by: record key identifying a patient (None: every image alone).
        label_key: key of the multi-hot label vector (records without it are treated as unlabelled).

    Returns:
        the selected records (same dict objects).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    _check_records(records, "label_fraction_split")
    if not records:
        raise ValueError("label_fraction_split got no records.")
    groups = _groups(records, group_by)
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    target = math.ceil(fraction * len(records))
    chosen: list[int] = []
    count = 0
    for k in order:
        if count >= target:
            break
        chosen.append(int(k))
        count += len(groups[keys[k]])
    if label_key in records[0]:
        labels = np.stack([np.nan_to_num(np.asarray(r[label_key], dtype=np.float32)) > 0 for r in records])
        taken = {i for k in chosen for i in groups[keys[k]]}
        have = labels[sorted(taken)].any(axis=0)
        for c in np.flatnonzero(labels.any(axis=0) & ~have):
            for k in order:
                members = groups[keys[k]]
                if labels[members, c].any():
                    if int(k) not in chosen:
                        chosen.append(int(k))
                    have |= labels[members].any(axis=0)
                    break
    selected = sorted(i for k in chosen for i in groups[keys[k]])
    return [records[i] for i in selected]


def _name(record: dict[str, Any], root: str | os.PathLike | None) -> str:
    path = str(record["image"])
    return os.path.relpath(path, root).replace(os.sep, "/") if root is not None else os.path.basename(path)


def write_split_list(
    records: Sequence[dict[str, Any]], path: str | os.PathLike, root: str | os.PathLike | None = None
) -> Path:
    """Write the image names of ``records`` one per line (like ChestX-ray14's ``train_val_list.txt``).

    Names are the file names, or paths relative to ``root`` when given (needed where file names repeat,
    as in CheXpert). The file is written atomically.
    """
    names = [_name(r, root) for r in records]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise ValueError(f"Image names repeat (e.g. {dup}); pass root= to write paths relative to it.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(n + "\n" for n in names))
    os.replace(tmp, path)
    return path


def read_split_list(
    path: str | os.PathLike, records: Sequence[dict[str, Any]], root: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """Select the records named in a list written by :func:`write_split_list` (same ``root``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected the split list {path} but it does not exist.")
    wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    by_name = {_name(r, root): r for r in records}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise ValueError(f"{path}: {len(missing)} listed image(s) not among the records, e.g. {missing[:3]}.")
    keep = set(wanted)
    return [r for r in records if _name(r, root) in keep]


def holdout_split(
    records: Sequence[dict[str, Any]], fraction: float, seed: int = 0, group_by: str = "patient_id"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split ``records`` into (kept, held out), holding out about ``fraction`` of the patients (whole patients).

    Records without ``group_by`` count as one patient each. ``fraction`` 0 holds out nothing.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout_split: fraction must be in [0, 1), got {fraction}.")
    _check_records(records, "holdout_split")
    keys = [r.get(group_by, f"__record_{i}") for i, r in enumerate(records)]
    patients = sorted(set(map(str, keys)))
    count = int(round(fraction * len(patients)))
    if fraction > 0 and count == 0 and len(patients) > 1:
        count = 1
    held = set(np.random.default_rng(seed).permutation(patients)[:count].tolist())
    kept = [r for r, k in zip(records, keys) if str(k) not in held]
    out = [r for r, k in zip(records, keys) if str(k) in held]
    return kept, out
