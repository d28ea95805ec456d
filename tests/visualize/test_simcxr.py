"""simcxr_gallery on a tiny hand-written ChestX-ray14-layout folder."""

from __future__ import annotations

import unittest
from pathlib import Path

import numpy as np
from PIL import Image

from monai_afire.visualize import simcxr_gallery
from tests.tiny import TmpDirTestCase


def _folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "anatomy").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, labels in enumerate(["No Finding", "Nodule|Effusion", "Mass"]):
        name = f"0000000{i}_000.png"
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(root / "images" / name)
        Image.fromarray(np.full((32, 32), 2, dtype=np.uint8)).save(root / "anatomy" / name)
        rows.append(f"{name},{labels},0,{i},50,M,PA,32,32,1,1,\n")
    (root / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n" + "".join(rows)
    )
    (root / "BBox_List_2017.csv").write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n00000001_000.png,Nodule,3,4,5,6,,,\n"
        "00000001_000.png,Effusion,10,20,10,8,,,\n00000002_000.png,Mass,1,1,20,20,,,\n"
    )
    return root


class TestSimCXRGallery(TmpDirTestCase):
    def test_gallery_writes_png(self) -> None:
        root = _folder(self.tmp / "set")
        out = simcxr_gallery(root, self.tmp / "figs" / "gallery.png", num_images=2, columns=2, show_anatomy=True)
        self.assertTrue(out.is_file())
        image = np.asarray(Image.open(out))
        self.assertEqual(image.ndim, 3)
        self.assertGreater(image.shape[1], image.shape[0])  # one row of two panels
        self.assertGreater(image[..., :3].std(), 0)

    def test_gallery_rejects_bad_layout(self) -> None:
        with self.assertRaisesRegex(ValueError, "num_images"):
            simcxr_gallery(_folder(self.tmp / "set"), self.tmp / "g.png", num_images=0)
        with self.assertRaisesRegex(FileNotFoundError, "Data_Entry_2017"):
            simcxr_gallery(self.tmp, self.tmp / "g.png")


if __name__ == "__main__":
    unittest.main()
