"""Learning to Count (Noroozi, Pirsiavash & Favaro 2017): a feature counter phi trained so that
the counts of the 2x-downsampled image equal the summed counts of its four tiles.

    L = ||phi(D∘x) - sum_{i=1..4} phi(T_i∘x)||_2^2 + max(0, c - ||phi(D∘y) - sum_{i=1..4} phi(T_i∘x)||_2^2)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..losses import counting_loss
from ..pretext import count_views


class Counting(nn.Module):
    """The counting pretext task: phi(.) = ReLU(W f(.)) with f the encoder, K non-negative counts.

    The paper's counter is AlexNet with a last ReLU layer of K = 1000 counts and margin c = 10;
    D averages 2x2 pixel blocks (``pretext.count_views``). y is the previous image of the batch
    (x rolled by one), so every image serves as the contrastive y of another.

    Args:
        encoder: f, the backbone (``feature_dim`` attribute); phi(.) = ReLU(W f(.)).
        n_counts: K, the length of the count vector.
        margin: c > 0 of the contrastive term.
        recipe: optional augmentation of x before the views are cut (None: the image itself).
    """

    def __init__(self, encoder: nn.Module, n_counts: int = 1000, margin: float = 10.0,
                 recipe: ViewRecipe | None = None):
        super().__init__()
        if n_counts < 1:
            raise ValueError(f"n_counts (K) must be >= 1, got {n_counts}; pass e.g. 1000 as in the paper")
        if not margin > 0:
            raise ValueError(f"margin (c) must be > 0, got {margin}; pass e.g. 10.0 as in the paper")
        self.encoder = encoder  # f
        self.counter_head = nn.Linear(encoder.feature_dim, n_counts)  # W
        self.margin = margin
        self.recipe = recipe

    def count(self, images: torch.Tensor) -> torch.Tensor:
        """phi(images): (M, K) non-negative counts of float images in [0, 1]."""
        return F.relu(self.counter_head(self.encoder(images)))

    def counts_of_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phi(D∘x) (N, K), phi(T_i∘x) (N, 4, K) and phi(D∘y) (N, K) for float images x, y = x rolled by one."""
        downsampled, tiles, downsampled_other = count_views(images, images.roll(1, dims=0))
        n = images.shape[0]
        counts = self.count(torch.cat([downsampled, tiles.flatten(0, 1), downsampled_other]))
        counts_downsampled, counts_tiles, counts_other = counts.split([n, 4 * n, n])
        return counts_downsampled, counts_tiles.unflatten(0, (n, 4)), counts_other

    def training_loss(self, batch) -> dict:
        images = (augment(batch.images, self.recipe, batch.generator) if self.recipe is not None
                  else batch.images.float() / 255)
        # float32: squared distances of counts lose too much precision in bfloat16
        counts_downsampled, counts_tiles, counts_other = (counts.float() for counts in self.counts_of_views(images))
        loss = counting_loss(counts_downsampled, counts_tiles, counts_other, self.margin)
        return {"loss": loss, "mean total count": counts_downsampled.detach().sum(1).mean().item()}
