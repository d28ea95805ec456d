"""One clean message instead of a long traceback when a bundle run through ``python -m monai.bundle run`` stops.

MONAI's config parser wraps every error raised while it builds or runs a component ("Failed to evaluate
ConfigExpression", "Failed to instantiate component"), so the user's error ends up in the middle of a long chained
traceback. The bundles call :func:`clean_errors` as their first ``initialize`` step: from then on, an error that
reaches the top of a ``python -m monai.bundle`` process prints only the one exception of its chain that says what is
wrong (the outermost one raised by monai-afire itself, whose messages name the file, key or value; else the innermost
cause) as the last thing on the console. ``--debug true`` (the bundles' ``debug`` key) or the environment variable
``MONAI_AFIRE_DEBUG=1`` keeps Python's full traceback. Nothing changes in other programs (notebooks, tests, scripts
that import monai-afire): the handler is only installed in ``python -m monai.bundle`` processes.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import TracebackType

__all__ = ["DEBUG_ENV", "clean_errors", "debug_enabled", "root_cause", "telling_error", "user_message"]

#: environment variable that keeps full tracebacks (``1``, ``true`` or ``yes``).
DEBUG_ENV = "MONAI_AFIRE_DEBUG"

#: exception types that describe a problem with the user's data or settings (their message is the whole story).
USER_ERRORS = (ValueError, OSError, KeyError, RuntimeError)

_PACKAGE = Path(__file__).resolve().parents[1]

_HINT = "for the full traceback run again with --debug true (or MONAI_AFIRE_DEBUG=1)"


def debug_enabled(debug: bool | str | None = None) -> bool:
    """True when ``debug`` is set (a bool or a string such as ``"true"``) or ``MONAI_AFIRE_DEBUG`` is."""
    values = (debug, os.environ.get(DEBUG_ENV))
    return any(str(v).strip().lower() in ("1", "true", "yes", "on") for v in values if v is not None)


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of ``error``'s chain (``raise ... from ...`` causes and implicit contexts)."""
    seen = {id(error)}
    while True:
        nxt = error.__cause__ if error.__cause__ is not None else error.__context__
        if nxt is None or id(nxt) in seen:
            return error
        seen.add(id(nxt))
        error = nxt


def _chain(error: BaseException) -> list[BaseException]:
    chain, seen = [error], {id(error)}
    while True:
        nxt = chain[-1].__cause__ if chain[-1].__cause__ is not None else chain[-1].__context__
        if nxt is None or id(nxt) in seen:
            return chain
        seen.add(id(nxt))
        chain.append(nxt)


def _raised_by_this_package(error: BaseException) -> bool:
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False


def telling_error(error: BaseException) -> BaseException:
    """The exception of ``error``'s chain that says what is wrong: the outermost one raised by monai-afire itself
    (a message written for the user, naming the file, key or value, often wrapping a library's terser error), else
    the innermost cause (MONAI's config parser wraps everything in "Failed to ..." errors)."""
    chain = _chain(error)
    return next((e for e in chain if _raised_by_this_package(e)), chain[-1])


def user_message(error: BaseException) -> str:
    """The message to show for ``error``: the type and message of its :func:`telling_error` (a KeyError's quotes
    removed)."""
    cause = telling_error(error)
    text = cause.args[0] if isinstance(cause, KeyError) and len(cause.args) == 1 else cause
    message = f"{type(cause).__name__}: {text}"
    if not isinstance(cause, USER_ERRORS) and not _raised_by_this_package(cause):
        message += "\n(an unexpected error: please report it with the full traceback)"
    return message


def _is_bundle_entry_point() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", "") in ("monai.bundle.__main__", "monai.bundle")


def _hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt) or debug_enabled():
        traceback.print_exception(kind, error, tb)
        return
    sys.stdout.flush()
    print(f"\nThe run stopped ({_HINT}):\n{user_message(error)}", file=sys.stderr, flush=True)


def clean_errors(debug: bool | str | None = False, force: bool = False) -> None:
    """Print errors that stop a bundle run as one clean message (see the module's description).

    Args:
        debug: keep Python's full traceback (also with ``MONAI_AFIRE_DEBUG=1``).
        force: install the handler in any process, not only in ``python -m monai.bundle`` ones (for tests).
    """
    if debug_enabled(debug) or not (force or _is_bundle_entry_point()):
        return
    sys.excepthook = _hook
