from __future__ import annotations

import unittest

from parameterized import parameterized

from monai_afire.utils import check_image_size, check_patch_size


class TestCheckPatchSize(unittest.TestCase):
    @parameterized.expand(
        [
            ((32, 48), 16, (16, 16)),
            (224, 16, (16,)),
            ((8, 8, 4), (4, 4, 2), (4, 4, 2)),
            (32, (8, 16), (8, 16)),
        ]
    )
    def test_fits(self, spatial, patch, expected):
        self.assertEqual(check_patch_size("test", spatial, patch), expected)

    @parameterized.expand(
        [
            ((36, 32), 16, r"test: the spatial shape \(36, 32\) must be a positive multiple of patch_size 16.*\(32,"),
            (36, 16, r"must be a positive multiple .*e\.g\. 32\)"),
            (8, 16, "positive multiple"),
            ((32, 32), 0, "positive multiple"),
            ((32, 32), (8, 8, 8), "differ in length"),
        ]
    )
    def test_refuses(self, spatial, patch, message):
        with self.assertRaisesRegex(ValueError, message):
            check_patch_size("test", spatial, patch)

    def test_bundle_start_up_check_names_the_setting(self):
        check_image_size(224, 16)
        with self.assertRaisesRegex(ValueError, "^image_size: .*patch_size 16"):
            check_image_size(36, 16)


if __name__ == "__main__":
    unittest.main()
