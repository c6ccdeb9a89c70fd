"""Context Prediction (Doersch et al. 2015): where does the second patch sit relative to the first?

A patch is taken from the image, a 3x3 grid is placed around it and one of its 8
neighbours is picked (``sslbook.pretext.context_pairs``: gaps between the
patches, random jitter of each patch, optional colour dropping). A siamese
network with late fusion sees the pair: one shared encoder f(.) embeds each
patch separately, the two features are concatenated, and an MLP h(.) predicts
the neighbour's position,

    p(position | centre X_1, neighbour X_2) = softmax(h([f(X_1), f(X_2)])),  8 classes,

trained with cross-entropy. Fusing late forces f to describe each patch on its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pretext import NEIGHBOUR_OFFSETS, context_pairs


def neighbour_grid_index(labels: torch.Tensor) -> torch.Tensor:
    """Row-major cell (0..8) of the 3x3 grid where the neighbour with position label 0..7 sits.

    The labels number the eight neighbours row-major around the centre (cell 4),
    skipping it (``NEIGHBOUR_OFFSETS``), so labels 4..7 sit one cell further on.
    """
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(NEIGHBOUR_OFFSETS)):
        raise ValueError(f"position labels must lie in 0..{len(NEIGHBOUR_OFFSETS) - 1}, got values from "
                         f"{int(labels.min())} to {int(labels.max())}; pass labels from context_pairs")
    return labels + (labels >= 4).long()


class ContextPrediction(nn.Module):
    """Siamese late-fusion network: a shared patch encoder f, concatenation [f(centre), f(neighbour)], an MLP h.

    Args:
        encoder: f, applied to each patch on its own (the profile's backbone works on 8x8 patches).
        hidden_dim: width of the hidden layer of h.
        patch_size, gap, jitter: the grid of ``context_pairs`` (CIFAR: 8, 2, 1; the paper: 96, 48, 7).
        colour_dropping: keep one random colour channel per patch (``pretext.drop_colours``).
        pairs_per_image: independent pairs cut from every image of a batch.
    """

    def __init__(self, encoder: nn.Module, hidden_dim: int = 512, patch_size: int = 8, gap: int = 2,
                 jitter: int = 1, colour_dropping: bool = False, pairs_per_image: int = 1):
        super().__init__()
        if pairs_per_image < 1:
            raise ValueError(f"pairs_per_image must be >= 1, got {pairs_per_image}; pass 1, or more to cut "
                             "several pairs from every image of a batch")
        self.encoder = encoder  # f(.), shared by both patches
        self.patch_size, self.gap, self.jitter = patch_size, gap, jitter
        self.colour_dropping = colour_dropping
        self.pairs_per_image = pairs_per_image
        n_positions = len(NEIGHBOUR_OFFSETS)
        self.classifier = nn.Sequential(  # h(.)
            nn.Linear(2 * encoder.feature_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True), nn.Linear(hidden_dim, n_positions))

    def make_pairs(self, images: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centre patches, neighbour patches and position labels (0..7, see NEIGHBOUR_OFFSETS) of float images.

        With pairs_per_image = m, every image gives m independent pairs: (m*N, C, p, p) each.
        """
        repeated = images.repeat(self.pairs_per_image, 1, 1, 1)
        return context_pairs(repeated, self.patch_size, self.gap, self.jitter, self.colour_dropping, generator)

    def forward(self, centre: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        """Position logits (M, 8): f on both patches in one pass, concatenate, h."""
        features = self.encoder(torch.cat([centre, neighbour]))
        centre_features, neighbour_features = features.chunk(2)
        return self.classifier(torch.cat([centre_features, neighbour_features], dim=1))

    def training_loss(self, batch) -> dict:
        centre, neighbour, labels = self.make_pairs(batch.images.float() / 255, batch.generator)
        logits = self(centre, neighbour)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean().item()}
