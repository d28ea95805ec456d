"""Count the host-device synchronisations that code asks for, also on a machine without a GPU.

A training step that reads a value of a device tensor on the host (``loss.item()``, ``float(norm)``, ``if tensor:``,
``tensor.tolist()``) or runs an operator whose output size depends on the data (``nonzero``, boolean indexing,
``unique``) makes the host wait until the device has finished all queued work: the GPU then idles while the next
step is launched. On a CPU nothing waits, so the calls are counted instead of timed:

- every operator that reads a scalar back (``aten._local_scalar_dense``: ``item``, ``float``, ``int``, ``bool``),
  compares on the host (``equal``, ``is_nonzero``) or has a data-dependent output shape (``nonzero``,
  ``masked_select``, ``unique``, ``repeat_interleave`` without ``output_size``, indexing with a boolean mask), seen by
  a :class:`~torch.utils._python_dispatch.TorchDispatchMode` (so calls made inside PyTorch count too);
- ``Tensor.tolist``, ``Tensor.numpy`` and ``Tensor.cpu``, which never reach the dispatcher for a CPU tensor, by
  patching them for the duration;
- on CUDA, additionally, every synchronisation the CUDA runtime reports under
  ``torch.cuda.set_sync_debug_mode("warn")`` (blocking copies included).

Example::

    with HostSyncCounter(engine=trainer, exclude=optimizer_step_counters(optimizer)) as syncs:
        trainer.run()
    print(syncs.by_iteration())  # {iteration: number of synchronising calls}
"""

from __future__ import annotations

import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSync", "HostSyncCounter", "SYNCING_OPERATORS", "optimizer_step_counters"]

#: ATen operators that make the host wait for the device (scalar reads, host comparisons, data-dependent shapes)
SYNCING_OPERATORS = frozenset(
    {
        "aten::_local_scalar_dense",
        "aten::is_nonzero",
        "aten::equal",
        "aten::nonzero",
        "aten::masked_select",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::unique_dim_consecutive",
        "aten::repeat_interleave",
    }
)
_INDEXING = frozenset({"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"})
_PATCHED = ("tolist", "numpy", "cpu")


@dataclass
class HostSync:
    """One synchronising call: what it was, the engine's iteration at the time, and where it was made."""

    name: str
    iteration: int | None
    where: str


def _has_bool_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


def _caller(skip: int = 3) -> str:
    """``file:line (function)`` of the innermost frame outside this module and torch's own Python files."""
    for frame in reversed(traceback.extract_stack()[:-skip]):
        name = frame.filename.replace("\\", "/")
        if "/torch/" not in name and frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return "<torch>"


def optimizer_step_counters(optimizer: torch.optim.Optimizer) -> Callable[[torch.Tensor], bool]:
    """A predicate that is True for the optimiser's ``step`` counters.

    PyTorch's non-fused, non-capturable optimisers keep ``state["step"]`` on the host even when the parameters are
    on a GPU and read it with ``item()``; that read never waits for the device, so a counter excludes it.
    """

    def is_step_counter(tensor: torch.Tensor) -> bool:
        return any(tensor is s.get("step") for s in optimizer.state.values())

    return is_step_counter


class _Mode(TorchDispatchMode):
    def __init__(self, record: Callable[[str, Any], None]) -> None:
        super().__init__()
        self.record = record

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func._schema.name
        if name in SYNCING_OPERATORS or (name in _INDEXING and _has_bool_index(args)):
            self.record(name.replace("aten::", ""), args[0] if args else None)
        return func(*args, **(kwargs or {}))


class HostSyncCounter:
    """Context manager recording every call that would synchronise the host with the device (see the module doc).

    Args:
        engine: an Ignite engine; each call is filed under ``engine.state.iteration`` at the time (None without).
        exclude: a predicate on the tensor a call reads; True drops the call (e.g. :func:`optimizer_step_counters`).
        cuda_sync_debug: on CUDA, also count what ``torch.cuda.set_sync_debug_mode("warn")`` reports.

    Attributes:
        calls: the :class:`HostSync` records, in order.
    """

    def __init__(
        self,
        engine: Any = None,
        exclude: Callable[[torch.Tensor], bool] | None = None,
        cuda_sync_debug: bool = True,
    ) -> None:
        self.engine = engine
        self.exclude = exclude
        self.cuda_sync_debug = bool(cuda_sync_debug) and torch.cuda.is_available()
        self.calls: list[HostSync] = []
        self._mode = _Mode(self._record)
        self._originals: dict[str, Any] = {}
        self._warnings: Any = None
        self._sync_mode: Any = None
        self._busy = False
        self._paused = False

    def attach(self, engine: Any) -> None:
        """File calls under ``engine``'s iteration and pause counting while it fetches a batch.

        Batches are read in DataLoader worker processes in real runs; with ``num_workers=0`` the transforms would
        run here and their host-side conversions would be counted although no device is involved.
        """
        from ignite.engine import Events

        self.engine = engine
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._pause)
        engine.add_event_handler(Events.GET_BATCH_COMPLETED, self._resume)

    def _pause(self, engine: Any = None) -> None:
        self._paused = True

    def _resume(self, engine: Any = None) -> None:
        self._paused = False

    def _iteration(self) -> int | None:
        state = getattr(self.engine, "state", None)
        return None if state is None else int(state.iteration)

    def _record(self, name: str, tensor: Any) -> None:
        if self._busy or self._paused:
            return
        self._busy = True
        try:
            if isinstance(tensor, torch.Tensor) and self.exclude is not None and self.exclude(tensor):
                return
            self.calls.append(HostSync(name, self._iteration(), _caller()))
        finally:
            self._busy = False

    def _patch(self) -> None:
        for name in _PATCHED:
            original = getattr(torch.Tensor, name)
            self._originals[name] = original

            def patched(tensor, *args, __original=original, __name=name, **kwargs):  # type: ignore[no-untyped-def]
                self._record(__name, tensor)
                return __original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, patched)

    def __enter__(self) -> HostSyncCounter:
        self._patch()
        if self.cuda_sync_debug:
            self._sync_mode = torch.cuda.get_sync_debug_mode()
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.simplefilter("always")
            show = warnings.showwarning

            def on_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
                if "synchroniz" in str(message):
                    self.calls.append(HostSync("cuda", self._iteration(), _caller(2)))
                else:
                    show(message, category, filename, lineno, file, line)

            warnings.showwarning = on_warning
            torch.cuda.set_sync_debug_mode("warn")
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)
        for name, original in self._originals.items():
            setattr(torch.Tensor, name, original)
        self._originals.clear()
        if self.cuda_sync_debug:
            torch.cuda.set_sync_debug_mode(self._sync_mode)
            self._warnings.__exit__(*exc)

    def by_iteration(self) -> dict[int | None, int]:
        """Number of synchronising calls per engine iteration."""
        return dict(Counter(c.iteration for c in self.calls))

    def report(self, limit: int = 20) -> str:
        """The first ``limit`` calls, one a line: iteration, name, caller."""
        lines = [f"iteration {c.iteration}: {c.name} at {c.where}" for c in self.calls[:limit]]
        if len(self.calls) > limit:
            lines.append(f"... and {len(self.calls) - limit} more")
        return "\n".join(lines)
