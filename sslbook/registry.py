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


def _hidden(profile: Profile, quick: int, full: int) -> int:
    return quick if profile.name == "quick" else full


def _align_uniform(profile: Profile, n_classes: int) -> nn.Module:
    from .methods.contrastive_variants import AlignUniform

    return AlignUniform(profile.encoder(), projection_dim=128, hidden_dim=_hidden(profile, 256, 512),
                        recipe=simclr_cifar(), alpha=2, t=2, uniformity_weight=1.0)


def _debiased(profile: Profile, n_classes: int) -> nn.Module:
    from .methods.contrastive_variants import DebiasedSimCLR

    return DebiasedSimCLR(profile.encoder(), projection_dim=128, hidden_dim=_hidden(profile, 256, 512),
                          temperature=0.5, tau_plus=0.1, recipe=simclr_cifar())


def _hard_negatives(profile: Profile, n_classes: int) -> nn.Module:
    from .methods.contrastive_variants import HardNegativeSimCLR

    return HardNegativeSimCLR(profile.encoder(), projection_dim=128, hidden_dim=_hidden(profile, 256, 512),
                              temperature=0.5, tau_plus=0.1, beta=1.0, recipe=simclr_cifar())


def _byol(profile: Profile, n_classes: int) -> nn.Module:
    from .augment import byol_cifar
    from .methods.byol import BYOL

    return BYOL(profile.encoder(), projection_dim=_hidden(profile, 128, 256), hidden_dim=_hidden(profile, 256, 4096),
                tau_base=0.99, recipes=byol_cifar())


def _invaspread(profile: Profile, n_classes: int) -> nn.Module:
    from .methods.invaspread import InvaSpread, invaspread_cifar

    return InvaSpread(profile.encoder(), embedding_dim=128, temperature=0.1, recipe=invaspread_cifar())


def _simclr_v2(profile: Profile, n_classes: int) -> nn.Module:
    from .methods.simclr_v2 import SimCLRv2

    return SimCLRv2(profile.encoder(), projection_dim=128, hidden_dim=_hidden(profile, 256, 2048), temperature=0.5,
                    recipe=simclr_cifar())


METHODS: dict[str, MethodSpec] = {
    "align_uniform": MethodSpec(_align_uniform, 8, "L_align + L_uniform as the training objective (Wang and Isola 2020)"),
    "debiased": MethodSpec(_debiased, 8, "SimCLR with the debiased contrastive loss (Chuang et al. 2020)"),
    "hard_negatives": MethodSpec(_hard_negatives, 8, "SimCLR with hard-negative weighting (Robinson et al. 2021)"),
    "byol": MethodSpec(_byol, 6, "BYOL: online predictor against an EMA target, no negatives (Grill et al. 2020)"),
    "invaspread": MethodSpec(_invaspread, 10, "InvaSpread: invariance and spreading of instance features (Ye et al. 2019)"),
    "simclr_v2": MethodSpec(_simclr_v2, 8, "SimCLRv2 pre-training with the three-layer head (Chen et al. 2020b)"),
    "simclr": MethodSpec(_simclr, 12, "SimCLR: NT-Xent between two augmented views (Chen et al. 2020)"),
    "supervised": MethodSpec(_supervised, 8, "the same encoder trained with labels: the supervised reference"),
}


def get(name: str) -> MethodSpec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; `python -m sslbook list` shows the {len(METHODS)} methods: "
                         f"{', '.join(sorted(METHODS))}")
    return METHODS[name]
