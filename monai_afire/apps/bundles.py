"""The MONAI bundles shipped with monai-afire: where their folders are, for ``python -m monai.bundle run``.

In a shell: ``python -c "from monai_afire.apps import bundle_dir; print(bundle_dir('afire_pretrain'))"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

__all__ = ["BUNDLES", "bundle_dir"]

#: the bundles that ship with the package.
BUNDLES = ("afire_pretrain", "afire_cxr_classification")


def _roots() -> Iterator[Path]:
    package = Path(__file__).resolve().parents[1]
    yield package / "bundles"  # an installed package: package data built from the repository's bundles/ folder
    checkout = package.parent
    if (checkout / "setup.py").is_file():
        yield checkout / "bundles"  # a source checkout used in place (editable install or PYTHONPATH)


def bundle_dir(name: str) -> Path:
    """The folder of the shipped bundle ``name`` (it holds ``configs/`` and ``docs/``).

    Pass its configs to ``python -m monai.bundle run --config_file <folder>/configs/train.json`` and set
    ``--bundle_root`` to the folder where the run's ``models/`` and ``eval/`` should go.

    Raises:
        ValueError: ``name`` is not one of :data:`BUNDLES`.
        FileNotFoundError: the bundle files are not installed (a broken installation).
    """
    if name not in BUNDLES:
        raise ValueError(f"bundle_dir: unknown bundle {name!r}; the shipped bundles are {list(BUNDLES)}.")
    searched = []
    for root in _roots():
        folder = root / name
        if (folder / "configs").is_dir():
            return folder
        searched.append(str(folder))
    raise FileNotFoundError(f"bundle_dir: the bundle {name!r} is not installed (looked in {searched}); reinstall.")
