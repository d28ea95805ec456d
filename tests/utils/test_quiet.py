"""nvimgcodec_notice_silenced drops MONAI's nvImageCodec notice, and nothing else."""

from __future__ import annotations

import logging
import os
import unittest
import warnings
from unittest import mock

from monai.transforms import LoadImage

from monai_afire.transforms import LoadRadiograph
from monai_afire.utils import nvimgcodec_notice_silenced
from monai_afire.utils.quiet import NVIMGCODEC_LOGGER, NVIMGCODEC_MESSAGES


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def notices(build) -> tuple[list[str], list[str]]:
    """(log messages of MONAI's nvImageCodec logger, warning messages) emitted while ``build()`` runs."""
    logger = logging.getLogger(NVIMGCODEC_LOGGER)
    handler = _Records()
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build()
    finally:
        logger.removeHandler(handler)
    return handler.messages, [str(w.message) for w in caught]


def mentions_nvimgcodec(messages: list[str]) -> bool:
    return any(m.startswith(NVIMGCODEC_MESSAGES) for m in messages)


class TestNvImgCodecNotice(unittest.TestCase):
    def setUp(self):
        env = {k: v for k, v in os.environ.items() if k != "MONAI_DICOM_READER"}
        patcher = mock.patch.dict(os.environ, env, clear=True)
        patcher.start()
        self.addCleanup(patcher.stop)
        logs, warned = notices(LoadImage)
        if not (mentions_nvimgcodec(logs) or mentions_nvimgcodec(warned)):
            self.skipTest("this MONAI / machine emits no nvImageCodec notice (nvImageCodec installed?)")

    def test_load_image_alone_is_noisy(self):
        logs, warned = notices(LoadImage)
        self.assertTrue(mentions_nvimgcodec(logs + warned), (logs, warned))

    def test_silenced_inside_the_block(self):
        def build():
            with nvimgcodec_notice_silenced():
                LoadImage(image_only=True)

        logs, warned = notices(build)
        self.assertFalse(mentions_nvimgcodec(logs), logs)
        self.assertFalse(mentions_nvimgcodec(warned), warned)

    def test_other_messages_pass(self):
        def build():
            with nvimgcodec_notice_silenced():
                logging.getLogger(NVIMGCODEC_LOGGER).warning("another message")
                warnings.warn("another warning", UserWarning, stacklevel=1)

        logs, warned = notices(build)
        self.assertEqual(logs, ["another message"])
        self.assertEqual(warned, ["another warning"])

    def test_filters_removed_after_the_block(self):
        with nvimgcodec_notice_silenced():
            pass
        logs, warned = notices(LoadImage)
        self.assertTrue(mentions_nvimgcodec(logs + warned))

    def test_kept_when_the_user_asks_for_nvimgcodec(self):
        def build():
            with mock.patch.dict(os.environ, {"MONAI_DICOM_READER": "nvimgcodec"}):
                with nvimgcodec_notice_silenced():
                    LoadImage(image_only=True)

        logs, warned = notices(build)
        self.assertTrue(mentions_nvimgcodec(logs + warned), (logs, warned))

    def test_load_radiograph_is_quiet(self):
        logs, warned = notices(LoadRadiograph)
        self.assertFalse(mentions_nvimgcodec(logs + warned), (logs, warned))


if __name__ == "__main__":
    unittest.main()
