"""Ibis' SQL compilers loaded one engine at a time.

Ibis' package of SQL compilers (``ibis.backends.sql.compilers``) imports the compiler of every
engine it knows, twenty of them, as soon as one backend loads; a store uses one. `load_lazily`
puts that package in place as a module whose names load their engine's compiler on first use,
before a backend imports it. Everything the package exports stays reachable: a compiler class
(``DuckDBCompiler``) or an engine's module (``duckdb``) loads its module; any other name runs
the package's own code first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

__all__ = ["load_lazily"]

PACKAGE = "ibis.backends.sql.compilers"
_SUFFIX = "Compiler"
_LOCK = threading.Lock()


def load_lazily() -> None:
    """Make Ibis load an engine's SQL compiler only when it is used (once per process; a no-op
    when the package is loaded already)."""
    with _LOCK:
        if PACKAGE in sys.modules:
            return
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = _lazy_names(module, spec)  # type: ignore[attr-defined]
        sys.modules[PACKAGE] = module


def _lazy_names(module: types.ModuleType, spec: importlib.machinery.ModuleSpec):  # noqa: ANN202
    whole: list[bool] = []

    def __getattr__(name: str) -> object:
        if name.endswith(_SUFFIX) and name[:1].isupper():  # e.g. BigQueryCompiler in .bigquery
            engine = importlib.import_module(f"{PACKAGE}.{name[: -len(_SUFFIX)].lower()}")
            if hasattr(engine, name):
                return getattr(engine, name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        if not whole:  # a name of another kind: the package as Ibis wrote it
            whole.append(True)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            if name in module.__dict__:
                return module.__dict__[name]
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    return __getattr__
