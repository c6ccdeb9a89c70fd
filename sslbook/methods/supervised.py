"""A supervised reference: the same encoder trained with labels on augmented images."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..runs import MethodEntry, per_profile


class Supervised(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int, recipe: ViewRecipe):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.feature_dim, n_classes)
        self.recipe = recipe

    def training_loss(self, batch) -> torch.Tensor:
        views = augment(batch.images, self.recipe, generator=batch.generator)
        return F.cross_entropy(self.classifier(self.encoder(views)), batch.labels)


def build(profile, train_data, *, crop_scale: tuple[float, float]) -> Supervised:
    return Supervised(profile.encoder(), len(train_data.classes),
                      ViewRecipe(crop_scale=crop_scale, jitter_p=0.0, grayscale_p=0.0))


ENTRY = MethodEntry(
    name="supervised", title="Supervised", chapter="book/evaluation.ipynb", order=21, build=build,
    summary="the same encoder trained with labels: the supervised reference",
    training=per_profile(quick=dict(epochs=8), full=dict(epochs=100)),
    settings=per_profile(dict(crop_scale=(0.5, 1.0))))
