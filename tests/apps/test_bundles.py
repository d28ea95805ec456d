"""The shipped bundles are found from the package (installed: package data; checkout: the bundles/ folder)."""

from __future__ import annotations

import json
import unittest
from pathlib import Path

from monai_afire.apps import BUNDLES, bundle_dir

ROOT = Path(__file__).resolve().parents[2]


class TestBundleDir(unittest.TestCase):
    def test_every_bundle_has_its_configs(self):
        for name in BUNDLES:
            folder = bundle_dir(name)
            self.assertEqual(folder.name, name)
            self.assertTrue((folder / "configs" / "metadata.json").is_file())
            train = json.loads((folder / "configs" / "train.json").read_text())
            self.assertEqual(train["bundle_root"], f"bundles/{name}")  # one meaning: the bundle's folder

    def test_the_repository_folder_is_the_source_of_truth(self):
        self.assertEqual(sorted(p.name for p in (ROOT / "bundles").iterdir() if p.is_dir()), sorted(BUNDLES))

    def test_unknown_bundle(self):
        with self.assertRaisesRegex(ValueError, "unknown bundle 'spleen'.*afire_pretrain"):
            bundle_dir("spleen")


if __name__ == "__main__":
    unittest.main()
