"""The shipped bundles are found from the package (installed: package data; checkout: the bundles/ folder)."""

from __future__ import annotations

import unittest
from pathlib import Path

from monai.bundle import ConfigParser

from monai_afire.apps import BUNDLES, bundle_dir

ROOT = Path(__file__).resolve().parents[2]


class TestBundleDir(unittest.TestCase):
    def test_every_bundle_has_its_configs(self):
        for name in BUNDLES:
            folder = bundle_dir(name)
            self.assertEqual(folder.name, name)
            self.assertTrue((folder / "configs" / "metadata.json").is_file())
            for config in ("train.json", "inference.json"):
                parser = ConfigParser()
                parser.read_config(str(folder / "configs" / config))
                # one meaning: the bundle's own folder, absolute, so no run writes into the current folder
                self.assertEqual(parser.get_parsed_content("bundle_root"), str(folder))
                self.assertTrue(Path(parser.get_parsed_content("ckpt_dir")).is_absolute())

    def test_the_repository_folder_is_the_source_of_truth(self):
        folders = sorted(p.name for p in (ROOT / "bundles").iterdir() if p.is_dir() and p.name != "schema")
        self.assertEqual(folders, sorted(BUNDLES))
        self.assertTrue((ROOT / "bundles" / "schema" / "metadata_schema.json").is_file())  # shipped, for offline checks

    def test_unknown_bundle(self):
        with self.assertRaisesRegex(ValueError, "unknown bundle 'spleen'.*afire_pretrain"):
            bundle_dir("spleen")


if __name__ == "__main__":
    unittest.main()
