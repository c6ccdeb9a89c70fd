"""The book's methods, found from their modules: every module of ``sslbook.methods`` with an ``ENTRY``.

A method's entry (``sslbook.runs.MethodEntry``) lives in the method's own module, beside its class:
its settings in each profile, how to build it, its title, family and chapter. Nothing here lists
the methods by hand; ``METHODS`` holds them in the book's order.
"""
from __future__ import annotations

import importlib
import pkgutil

from . import methods as _methods_package
from .runs import FAMILIES, MethodEntry


def _discover() -> dict[str, MethodEntry]:
    entries = []
    for module_info in pkgutil.iter_modules(_methods_package.__path__):
        module = importlib.import_module(f"{_methods_package.__name__}.{module_info.name}")
        entries += [entry for entry in vars(module).values() if isinstance(entry, MethodEntry)]
    names = [entry.name for entry in entries]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise RuntimeError(f"more than one method module declares {', '.join(duplicated)}")
    entries.sort(key=lambda entry: (FAMILIES.index(entry.family), entry.order))
    return {entry.name: entry for entry in entries}


METHODS: dict[str, MethodEntry] = _discover()  # in the book's order


def get(name: str) -> MethodEntry:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; `python -m sslbook list` shows the {len(METHODS)} methods: "
                         f"{', '.join(sorted(METHODS))}")
    return METHODS[name]
