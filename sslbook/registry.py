"""The book's methods, found from their modules: every module of ``sslbook.methods`` with an ``ENTRY``.

A method's entry (``sslbook.runs.MethodEntry``) lives in the method's own module, beside its class:
its settings in each profile, how to build it, its title, family and chapter. Nothing here lists
the methods by hand; ``METHODS`` holds them in the book's order.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import methods as _methods_package
from .data import ImageData
from .profiles import Profile
from .runs import MethodEntry

FAMILIES = ("pretext tasks", "contrastive", "generative", "reference")  # the book's parts, then the reference


@dataclass(frozen=True)
class MethodSpec:
    build: Callable[[Profile, ImageData], nn.Module]  # (profile, training set) -> method
    quick_epochs: int
    summary: str
    title: str
    family: str
    chapter: str
    config_overrides: Callable[[Profile], dict] = lambda profile: {}


def _spec(build, quick_epochs: int, title: str, chapter: str, summary: str, **options) -> MethodSpec:
    family = {"pretext": "pretext tasks", "contrastive": "contrastive", "generative": "generative"}.get(
        chapter.split("/")[1], "reference")
    return MethodSpec(build, quick_epochs, summary, title, family, f"{chapter}.ipynb", **options)


_LEGACY: dict[str, MethodSpec] = {  # moving into the method modules, one by one
}


_BOOK_ORDER = ["exemplar_cnn", "context_prediction", "jigsaw", "colorization", "counting", "rotation", "cpc_v2",
               "align_uniform", "debiased", "hard_negatives", "invaspread", "simclr", "simclr_v2", "byol",
               "barlow_twins", "instdisc", "cmc", "dae", "context_encoder", "mae", "supervised"]


def _legacy_entry(name: str, spec: MethodSpec) -> MethodEntry:
    from .profiles import choose_profile

    training = {profile: spec.config_overrides(choose_profile(profile, verbose=False)) for profile in ("quick", "full")}
    training["quick"] = {"epochs": spec.quick_epochs, **training["quick"]}
    return MethodEntry(name, spec.title, spec.family, spec.chapter, _BOOK_ORDER.index(name) + 1, spec.summary,
                       lambda profile, train_data: spec.build(profile, train_data), {"quick": {}, "full": {}},
                       training)


def _discover() -> dict[str, MethodEntry]:
    entries = []
    for module_info in pkgutil.iter_modules(_methods_package.__path__):
        module = importlib.import_module(f"{_methods_package.__name__}.{module_info.name}")
        entries += [entry for entry in vars(module).values() if isinstance(entry, MethodEntry)]
    moved = {entry.name for entry in entries}
    entries += [_legacy_entry(name, spec) for name, spec in _LEGACY.items() if name not in moved]
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
