"""Gallery of simulated (or real ChestX-ray14-layout) chest radiographs with their boxes and findings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["simcxr_gallery"]


def simcxr_gallery(
    root: str | os.PathLike,
    out_path: str | os.PathLike,
    num_images: int = 12,
    columns: int = 4,
    findings_first: bool = True,
    show_anatomy: bool = False,
    panel_inches: float = 3.0,
) -> Path:
    """Save a PNG grid of radiographs with their boxes and finding names.

    Args:
        root: a data set folder in the ChestX-ray14 layout (e.g. written by
            :func:`monai_afire.data.generate_simcxr`).
        out_path: PNG file to write (folders are created).
        num_images: panels in the grid.
        columns: panels per row.
        findings_first: fill the grid with images that have findings before normal ones.
        show_anatomy: overlay the ``anatomy/`` label map (simulated sets only) at low opacity.
        panel_inches: size of each panel.

    Returns:
        the written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    from monai_afire.data.datasets import load_chestxray14

    if num_images < 1 or columns < 1:
        raise ValueError(f"num_images and columns must be >= 1, got {num_images} and {columns}.")
    records, classes = load_chestxray14(root)
    if findings_first:
        records = sorted(records, key=lambda r: -float(np.asarray(r["label"]).sum() > 0))
    records = records[:num_images]
    rows = int(np.ceil(len(records) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * panel_inches, rows * panel_inches), squeeze=False)
    palette = plt.get_cmap("tab20")
    colour = {c: palette(i % 20) for i, c in enumerate(classes)}
    for ax in axes.ravel():
        ax.axis("off")
    for ax, rec in zip(axes.ravel(), records):
        image = np.asarray(Image.open(rec["image"]), dtype=np.float32)
        image = image / (65535.0 if image.max() > 255 else 255.0)
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        anatomy_path = Path(root) / "anatomy" / Path(rec["image"]).name
        if show_anatomy and anatomy_path.is_file():
            anatomy = np.asarray(Image.open(anatomy_path))
            ax.imshow(np.ma.masked_equal(anatomy, 0), cmap="tab20", alpha=0.3, interpolation="nearest")
        for (x0, y0, x1, y1), name in zip(rec.get("boxes", []), rec.get("box_labels", [])):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, ec=colour.get(name, "w")))
            ax.text(x0, y0 - 1, name, color=colour.get(name, "w"), fontsize=7, va="bottom")
        names = [classes[i] for i in np.flatnonzero(np.asarray(rec["label"]) > 0)]
        ax.set_title(f"{Path(rec['image']).name}\n{', '.join(names) or 'No Finding'}", fontsize=7)
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
