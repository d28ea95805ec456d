"""Silence third-party notices that tell monai-afire's users nothing they can act on.

MONAI's ``LoadImage`` builds an instance of every image reader it knows, whatever reader is asked for. One of them,
``NvImgCodecPydicomReader`` (GPU decoding of compressed DICOM with NVIDIA's nvImageCodec), logs
"nvImageCodec is not available; skipping pydicom decoder plugin registration." and warns "NvImgCodecPydicomReader:
nvImageCodec decoder plugin did not register successfully" on every machine without that optional package, so every
command that loads a film printed both. monai-afire never asks for that reader; :func:`nvimgcodec_notice_silenced`
drops exactly these two messages while a loader is built, and nothing else.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NVIMGCODEC_LOGGER", "NVIMGCODEC_MESSAGES", "nvimgcodec_notice_silenced"]

#: the logger of MONAI's nvImageCodec plugin module
NVIMGCODEC_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
#: the starts of the two messages silenced (the log record and the ``UserWarning``)
NVIMGCODEC_MESSAGES = (
    "nvImageCodec is not available; skipping pydicom decoder plugin registration",
    "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully",
)


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextmanager
def nvimgcodec_notice_silenced() -> Iterator[None]:
    """Within the block, drop MONAI's "nvImageCodec is not available" log record and warning (see the module doc).

    Use it around the construction of ``monai.transforms.LoadImage`` / ``LoadImaged``, where MONAI emits them. Other
    messages of that logger and other warnings pass. When the user asked for that reader
    (``MONAI_DICOM_READER=nvimgcodec``), the notice is informative and is left alone.

    Example::

        with nvimgcodec_notice_silenced():
            loader = LoadImaged("image", reader="NibabelReader")
    """
    if os.environ.get("MONAI_DICOM_READER", "").lower() == "nvimgcodec":
        yield
        return
    logger = logging.getLogger(NVIMGCODEC_LOGGER)
    drop = _DropMessages(NVIMGCODEC_MESSAGES)
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=re.escape(NVIMGCODEC_MESSAGES[1]), category=UserWarning)
            yield
    finally:
        logger.removeFilter(drop)
