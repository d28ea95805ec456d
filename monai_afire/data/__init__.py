"""data of monai-afire: dataset readers, label-fraction splits, simulated chest radiographs, repeated and resumable
datasets."""

from __future__ import annotations

from .checks import check_image_file, check_records, find_unreadable, reader_kwargs_for_check
from .datasets import (
    CHESTXRAY14_CLASSES,
    CHEXPERT_ALL_CLASSES,
    CHEXPERT_CLASSES,
    IMAGE_EXTENSIONS,
    RSNA_CLASSES,
    VINDR_CLASSES,
    dataset_reader,
    load_chestxray14,
    load_chexpert,
    load_csv_dataset,
    load_dataset,
    load_image_folder,
    load_mimic_cxr,
    load_rsna_pneumonia,
    load_vindr_cxr,
)
from .repeat import RepeatedDataset
from .resumable import ResumableSampler, SeededDataset, item_seed
from .simcxr_findings import FINDINGS as SIMCXR_FINDINGS
from .simcxr_phantom import ANATOMY_LABELS as SIMCXR_ANATOMY_LABELS
from .simcxr_phantom import load_phantom
from .splits import holdout_split, label_fraction_split, read_split_list, write_split_list

# Modules that are also commands (``python -m monai_afire.data.<module>``) are imported on first use of one of their
# names, not here: runpy imports this package before it runs the module as ``__main__``, and a module imported
# twice (once as ``__main__``) gives a RuntimeWarning and two copies of its classes.
_LAZY = {
    **{
        name: "simcxr"
        for name in ("DEFAULT_PREVALENCE", "SimCXRGenerator", "SimCXRSample", "SimCXRSettings", "generate_simcxr")
    },
    **{
        name: "prepare"
        for name in ("FILM_EXTENSIONS", "PrepareSummary", "prepare_film", "prepare_films", "prepared_name")
    },
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CHESTXRAY14_CLASSES",
    "CHEXPERT_ALL_CLASSES",
    "CHEXPERT_CLASSES",
    "IMAGE_EXTENSIONS",
    "RSNA_CLASSES",
    "VINDR_CLASSES",
    "check_image_file",
    "check_records",
    "reader_kwargs_for_check",
    "find_unreadable",
    "load_chestxray14",
    "load_chexpert",
    "load_csv_dataset",
    "load_dataset",
    "dataset_reader",
    "load_image_folder",
    "load_mimic_cxr",
    "load_rsna_pneumonia",
    "load_vindr_cxr",
    "ResumableSampler",
    "SeededDataset",
    "item_seed",
    "holdout_split",
    "label_fraction_split",
    "read_split_list",
    "write_split_list",
    "DEFAULT_PREVALENCE",
    "SIMCXR_ANATOMY_LABELS",
    "SIMCXR_FINDINGS",
    "SimCXRGenerator",
    "SimCXRSample",
    "SimCXRSettings",
    "generate_simcxr",
    "load_phantom",
    "RepeatedDataset",
    "FILM_EXTENSIONS",
    "PrepareSummary",
    "prepare_film",
    "prepare_films",
    "prepared_name",
]
