"""InvaSpread (Ye, Zhang, Yuen & Chang 2019): invariant and spreading instance features.

A batch holds N instances x_i and one augmented copy x^_i of each. A shared network
maps both to L2-normalised 128-d features f_i and f^_i; the loss makes f^_i recognise
its own instance among the N (invariance) and keeps the instances apart from each
other (spreading), with the batch's own features as the instance classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from ..augment import ViewRecipe, augment
from ..losses import invaspread_loss


def invaspread_cifar() -> ViewRecipe:
    """The augmentation of the authors' CIFAR-10 script (Ye et al., 2019, official code):
    random resized crop with scale (0.2, 1), colour jitter (0.4, 0.4, 0.4, 0.4) on every
    image, grayscale with p = 0.2 and a horizontal flip."""
    return ViewRecipe(crop_scale=(0.2, 1.0), jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4,
                      hue=0.4, grayscale_p=0.2)


class InvaSpread(nn.Module):
    """Invariant and spreading instance features (Ye et al., 2019).

    encoder: the backbone; embedding_dim: size of the linear embedding layer on top
    (128 in the paper), whose outputs are L2-normalised into f; temperature: tau;
    recipe: how the augmented copy x^_i is drawn.
    """

    def __init__(self, encoder: nn.Module, embedding_dim: int = 128, temperature: float = 0.1,
                 recipe: ViewRecipe | None = None):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; pass a positive temperature such as 0.1")
        self.encoder = encoder
        self.embedding = nn.Linear(encoder.feature_dim, embedding_dim)  # the 128-d layer; f = its output / norm
        self.temperature = temperature
        self.recipe = recipe or invaspread_cifar()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised embeddings of float images in [0, 1]; the loss normalises them."""
        return self.embedding(self.encoder(images))

    def training_loss(self, batch) -> torch.Tensor:
        originals = batch.images.float() / 255  # x_i
        augmented = augment(batch.images, self.recipe, generator=batch.generator)  # x^_i
        f, f_hat = self.embed(torch.cat([originals, augmented])).chunk(2)
        return invaspread_loss(f, f_hat, self.temperature)
