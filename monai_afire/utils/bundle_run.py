"""What every bundle run does first (its first ``initialize`` step): clean error messages and local tracking."""

from __future__ import annotations

import os

from .errors import clean_errors

__all__ = ["MLFLOW_FILE_STORE_ENV", "local_tracking_uri", "start_bundle_run"]

#: MLflow 3.13 and later refuse a local folder as tracking store unless this variable is "true".
MLFLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"


def start_bundle_run(debug: bool | str | None = False) -> None:
    """The bundles' first ``initialize`` step.

    1. Errors that stop a ``python -m monai.bundle`` run print as one clean message, the traceback only with
       ``--debug true`` or ``MONAI_AFIRE_DEBUG=1`` (see :func:`monai_afire.utils.clean_errors`).
    2. ``--tracking mlflow`` may write to a local folder (``tracking_uri`` ``file:///...``, by default
       ``<output_dir>/mlruns``): MLflow's opt-in for file stores is set unless the environment already says otherwise.
       It has no effect without ``--tracking``.
    """
    clean_errors(debug)
    os.environ.setdefault(MLFLOW_FILE_STORE_ENV, "true")


def local_tracking_uri(folder: str | os.PathLike) -> str:
    """The ``file://`` URI of a local MLflow store in ``folder`` (absolute), for the bundles' ``tracking_uri``."""
    from pathlib import Path

    return Path(folder).expanduser().resolve().as_uri()
