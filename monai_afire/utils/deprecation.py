"""Old import paths kept for one release: moved names and modules answer with a DeprecationWarning naming the new place.

A target is written ``"package.module:name"`` (an object) or ``"package.module"`` (a module); it is imported only
when the old name is used, so an alias never adds an import at start-up.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_modules", "moved_names"]


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found


def _warn(old: str, target: str, stacklevel: int) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {target.replace(':', '.')}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def moved_names(module: str, moves: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) for ``module``: each old name of ``moves`` gives the object at its
    new place, with a DeprecationWarning; any other name raises AttributeError as usual.

    Args:
        module: the module the function is installed in (``__name__``).
        moves: old name -> target.
    """

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", moves[name], stacklevel=3)
        return _resolve(moves[name])

    return __getattr__


class _MovedModule(types.ModuleType):
    """Stands at an old module path: names resolve in the new module, or at the targets of ``renamed``."""

    def __init__(self, name: str, new: str, renamed: Mapping[str, str]) -> None:
        super().__init__(name, f"Deprecated: moved to {new}.")
        self.__dict__.update(_new=new, _renamed=dict(renamed))

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        target = self._renamed.get(attr)
        if target is not None:
            _warn(f"{self.__name__}.{attr}", target, stacklevel=3)
            return _resolve(target)
        return getattr(importlib.import_module(self._new), attr)


class _MovedModulesFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import hook answering the old module paths of one package (last on ``sys.meta_path``: real files win)."""

    def __init__(self, moves: Mapping[str, tuple[str, Mapping[str, str]]]) -> None:
        self.moves = dict(moves)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.moves:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new, renamed = self.moves[spec.name]
        _warn(spec.name, new, stacklevel=3)
        return _MovedModule(spec.name, new, renamed)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module resolves its names on use."""


def moved_modules(package: str, moves: Mapping[str, str | tuple[str, Mapping[str, str]]]) -> None:
    """Keep ``import <package>.<old>`` working for the submodules of ``package`` that moved.

    Args:
        package: the package whose submodules moved (``__name__`` of its ``__init__``).
        moves: old submodule name -> new module, or (new module, {name: target}) for names that moved elsewhere
            than the rest of the module.
    """
    table = {
        f"{package}.{old}": (new, {}) if isinstance(new, str) else (new[0], dict(new[1])) for old, new in moves.items()
    }
    if not any(isinstance(f, _MovedModulesFinder) and set(table) <= set(f.moves) for f in sys.meta_path):
        sys.meta_path.append(_MovedModulesFinder(table))
