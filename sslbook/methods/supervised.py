"""A supervised reference: the same encoder trained with labels on augmented images."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment


class Supervised(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int, recipe: ViewRecipe):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(encoder.feature_dim, n_classes)
        self.recipe = recipe

    def training_loss(self, batch) -> torch.Tensor:
        views = augment(batch.images, self.recipe, generator=batch.generator)
        return F.cross_entropy(self.classifier(self.encoder(views)), batch.labels)
