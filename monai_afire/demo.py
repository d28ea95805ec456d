"""Demo of monai-afire: ``python -m monai_afire.demo --out DIR``.

For now it writes the Synthetic Lesion Mask gallery of the real chest film ``RG1_UNCR.dcm`` from ``pydicom-data``:
the film goes through :func:`monai_afire.transforms.radiograph_transforms`, then
:class:`monai_afire.transforms.RandSyntheticLesiond` with four seeds, and
:func:`monai_afire.visualize.lesion_gallery` saves ``DIR/slm_gallery.png``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEMO_FILM", "demo_film_path", "write_slm_gallery", "main"]

DEMO_FILM = "RG1_UNCR.dcm"


def demo_film_path() -> str:
    """Path of the demo chest film in the installed ``pydicom-data`` package (never downloads).

    Raises:
        RuntimeError: when the film is not installed, saying how to install it.
    """
    from pydicom.data import get_testdata_file

    try:
        path = get_testdata_file(DEMO_FILM, download=False)
    except Exception as e:  # pydicom raises or warns in various ways when the data package is absent
        raise RuntimeError(f"The demo film {DEMO_FILM} is not installed: run `pip install pydicom-data`.") from e
    if path is None or not Path(path).is_file():
        raise RuntimeError(f"The demo film {DEMO_FILM} is not installed: run `pip install pydicom-data`.")
    return str(path)


def write_slm_gallery(
    out_dir: str | Path, film: str | None = None, seeds: Sequence[int] = (0, 1, 2, 3), image_size: int = 224
) -> Path:
    """Load a film, add synthetic lesions with each seed and save ``out_dir/slm_gallery.png``.

    Args:
        out_dir: output folder (created).
        film: radiograph file; the ``pydicom-data`` demo film when None.
        seeds: one gallery row per seed.
        image_size: side of the prepared image.

    Returns:
        the path of the gallery.
    """
    from monai_afire.transforms import RandSyntheticLesiond, radiograph_transforms
    from monai_afire.visualize import lesion_gallery

    film = demo_film_path() if film is None else film
    prepared = radiograph_transforms(image_size=image_size)({"image": film})
    lesion = RandSyntheticLesiond(keys="image")
    rows = [lesion.set_random_state(seed)(prepared) for seed in seeds]
    return lesion_gallery(
        [r["clean"] for r in rows],
        [r["lesion_mask"] for r in rows],
        [r["image"] for r in rows],
        Path(out_dir) / "slm_gallery.png",
        titles=[f"seed {s}" for s in seeds],
        transpose=True,
    )


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line entry point; prints the path of the gallery."""
    parser = argparse.ArgumentParser(prog="python -m monai_afire.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    args = parser.parse_args(argv)
    path = write_slm_gallery(args.out)
    print(f"Synthetic Lesion Mask gallery written to {path}")
    return path


if __name__ == "__main__":
    main()
