"""Run profiles: ``quick`` (a laptop CPU, minutes), ``gpu`` (about ten minutes on a T4) and ``full``.

``gpu`` and ``full`` train the CIFAR ResNet-18 on the whole of CIFAR-10 with each method's
paper-scale settings; ``full`` for the recipe's hundreds of epochs (hours), ``gpu`` for the epochs
that fit ``budget.BUDGET_MINUTES`` on a T4, sized per method from its step's FLOPs (``sslbook.budget``).
A GPU selects ``gpu``; otherwise ``quick``. ``SSLBOOK_PROFILE`` or the ``name`` argument overrides
the choice, and every chapter prints which profile ran and why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
from torch import nn

from .budget import BUDGET_MINUTES, REFERENCE_GPU
from .data import ImageData, balanced_subset, load_dataset
from .networks import make_encoder
from .train import TrainConfig

PROFILE_ENV = "SSLBOOK_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    reason: str
    device: torch.device
    backbone: str
    backbone_options: dict
    train_per_class: int | None  # None: every training image
    test_per_class: int | None
    epochs: int  # with ``sized``: the most epochs
    batch_size: int
    data_set: str = "cifar10"
    recipe: str = ""  # the profile whose method settings and optimiser this one takes ("": its own)
    sized: bool = False  # epochs sized per method to the time budget (``sslbook.budget``)

    @property
    def settings_of(self) -> str:
        """The profile name the methods' settings are looked up under."""
        return self.recipe or self.name

    def encoder(self, in_channels: int = 3) -> nn.Module:
        """The profile's backbone, for images of ``in_channels`` channels (1 for L, 2 for ab of Lab)."""
        return make_encoder(self.backbone, **{**self.backbone_options, "in_channels": in_channels})

    def load_data(self, root=None, seed: int = 0) -> tuple[ImageData, ImageData]:
        """The profile's training and test sets, as class-balanced subsets where it asks for them."""
        train = load_dataset(self.data_set, "train", root)
        test = load_dataset(self.data_set, "test", root)
        if self.train_per_class is not None:
            train = balanced_subset(train, self.train_per_class, seed)
        if self.test_per_class is not None:
            test = balanced_subset(test, self.test_per_class, seed)
        return train, test

    def train_config(self, **overrides) -> TrainConfig:
        """The training settings of this profile; a chapter overrides what its method needs."""
        base = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, **QUICK_OPTIMISER
                           if self.settings_of == "quick" else FULL_OPTIMISER)
        return replace(base, **overrides)

    def describe(self) -> str:
        size = "all" if self.train_per_class is None else f"{self.train_per_class} per class"
        epochs = (f"the epochs that fit {BUDGET_MINUTES:g} minutes on a {REFERENCE_GPU} (at most {self.epochs})"
                  if self.sized else f"{self.epochs} epochs")
        return (f"Profile: {self.name} ({self.reason}); {self.backbone} on {self.device.type}, "
                f"training images: {size}, {epochs} of batch {self.batch_size}. "
                f"Set {PROFILE_ENV} to {', '.join(PROFILES)} to choose.")


QUICK_OPTIMISER = dict(optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=0.5)
FULL_OPTIMISER = dict(optimizer="sgd", lr=0.12, weight_decay=5e-4, warmup_epochs=10)

PROFILES = {
    "quick": dict(backbone="small_cnn", backbone_options={"width": 16, "feature_dim": 128},
                  train_per_class=500, test_per_class=200, epochs=15, batch_size=256),
    "gpu": dict(backbone="resnet18", backbone_options={}, train_per_class=None, test_per_class=None,
                epochs=200, batch_size=512, recipe="full", sized=True),
    "full": dict(backbone="resnet18", backbone_options={}, train_per_class=None, test_per_class=None,
                 epochs=200, batch_size=512),
}


def choose_profile(name: str | None = None, verbose: bool = True) -> Profile:
    """Pick the profile: ``name``, else ``$SSLBOOK_PROFILE``, else by the hardware."""
    has_gpu = torch.cuda.is_available()
    if name is not None:
        reason = "chosen by argument"
    elif os.environ.get(PROFILE_ENV):
        name, reason = os.environ[PROFILE_ENV], f"chosen by {PROFILE_ENV}"
    else:
        name = "gpu" if has_gpu else "quick"
        reason = "a GPU was found" if has_gpu else "no GPU was found"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; use one of {sorted(PROFILES)}")
    device = torch.device("cuda" if has_gpu else "cpu")
    profile = Profile(name=name, reason=reason, device=device, **PROFILES[name])
    if verbose:
        print(profile.describe())
    return profile
