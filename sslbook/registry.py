"""The methods the command line can train: how to build each from a profile, and its encoder.

Each entry builds the method around the profile's backbone with the settings its chapter uses in
the quick profile, and says how many quick-profile epochs that chapter trains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .augment import ViewRecipe, simclr_cifar
from .profiles import Profile


@dataclass(frozen=True)
class MethodSpec:
    build: Callable[[Profile, int], nn.Module]  # (profile, n_classes) -> method
    quick_epochs: int
    summary: str
    encoder: Callable[[nn.Module], nn.Module] = lambda method: method.encoder


def _simclr(profile: Profile, n_classes: int) -> nn.Module:
    from .methods import SimCLR

    return SimCLR(profile.encoder(), hidden_dim=256 if profile.name == "quick" else 512, temperature=0.5,
                  recipe=simclr_cifar())


def _supervised(profile: Profile, n_classes: int) -> nn.Module:
    from .methods import Supervised

    return Supervised(profile.encoder(), n_classes,
                      ViewRecipe(crop_scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0))


METHODS: dict[str, MethodSpec] = {
    "simclr": MethodSpec(_simclr, 12, "SimCLR: NT-Xent between two augmented views (Chen et al. 2020)"),
    "supervised": MethodSpec(_supervised, 8, "the same encoder trained with labels: the supervised reference"),
}


def get(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; `python -m sslbook list` shows the {len(METHODS)} methods: "
                         f"{', '.join(sorted(METHODS))}")
    return METHODS[name]
