"""A package's names that load their module on first use (PEP 562).

A command imports a package for one name and should not pay for the rest: ``kizuna analyze``
needs no SciPy, Jinja2 or HTTP client, which the scenario runner, the report and the LINE client
load. A package lists the names of its heavier modules and lets this module find them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, lazy: Mapping[str, str]) -> Callable[[str], object]:
    """The module ``__getattr__`` of `package`: a name of `lazy` (name → its module, e.g.
    ``"_run"``) imports ``package._run`` and returns the name from it."""

    def __getattr__(name: str) -> object:
        if name in lazy:
            return getattr(importlib.import_module(f"{package}.{lazy[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
