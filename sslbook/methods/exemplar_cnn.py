"""Exemplar-CNN (Dosovitskiy, Springenberg, Riedmiller & Brox 2014): every seed patch x_i is a
surrogate class; random transformations T x_i of it are its samples, and a classifier learns
to tell the N surrogate classes apart:

    L = sum_i sum_{T in T_i} l(i, f(T x_i)),   l: the multinomial cross-entropy over N classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..pretext import exemplar_patch_weights, sample_exemplar_patches


def exemplar_cifar() -> ViewRecipe:
    """The surrogate-class transformations for 24 px CIFAR seed patches, resized to 32 px.

    The paper composes translation (up to 0.2 of the patch size), scaling (factor 0.7
    to 1.4), rotation (up to 20 degrees), two contrast changes and a hue shift. Here:
    a random resized crop (translation and scaling; about 0.4 to 1 of the patch area),
    colour jitter on every sample (brightness, contrast, saturation: 0.4; hue: 0.1) and,
    as is common on CIFAR, a horizontal flip. ``sslbook.augment`` has no rotation.
    """
    return ViewRecipe(output_size=32, crop_scale=(0.4, 1.0), flip_p=0.5, jitter_p=1.0, grayscale_p=0.0)


def sample_seed_patches(
    images: torch.Tensor, n_classes: int, patch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N seed patches x_i, each from a different image, drawn where the gradient is large (Dosovitskiy et al., 2014).

    The paper samples its patches "from different images", each with probability
    proportional to the squared gradient magnitude inside it.
    ``pretext.sample_exemplar_patches`` draws positions over all images at once (Gumbel
    top-k, largest key first), so one image can give several, overlapping classes.
    Keeping only the first patch of each image is exact: an image's first patch is its
    position of largest Gumbel key, drawn in proportion to its weight within the image,
    and images come in the order of their largest keys, a draw without replacement in
    proportion to their total weight. Draws are doubled until N images are reached.

    Args:
        images: seed images x, float (M, 3, H, W) in [0, 1].
        n_classes: N, the number of surrogate classes (at most the images with some gradient).
        patch_size: patch side p.
        generator: random source of the draw.

    Returns:
        patches (N, 3, p, p), source_index (N,) with N distinct images, positions (N, 2) (top, left).
    """
    weights = exemplar_patch_weights(images, patch_size).flatten(1)
    n_candidates = int((weights > 0).sum())
    n_textured_images = int((weights > 0).any(dim=1).sum())
    if not 1 <= n_classes <= n_textured_images:
        raise ValueError(
            f"n_classes must lie in [1, {n_textured_images}] (images with non-zero gradient), got {n_classes}; "
            "pass fewer classes or more (textured) images"
        )
    n_draws = min(2 * n_classes, n_candidates)
    while True:
        patches, source, positions = sample_exemplar_patches(images, n_draws, patch_size, generator)
        draw_order = torch.arange(len(source), device=source.device)
        first_of_image = torch.full((len(images),), len(source), device=source.device)
        first_of_image.scatter_reduce_(0, source, draw_order, reduce="amin")
        keep = (draw_order == first_of_image[source]).nonzero().squeeze(1)[:n_classes]
        if len(keep) == n_classes or n_draws == n_candidates:  # all candidates reach every textured image
            return patches[keep], source[keep], positions[keep]
        n_draws = min(2 * n_draws, n_candidates)


class ExemplarCNN(nn.Module):
    """The surrogate-class classifier: encoder f, then a linear layer over the N surrogate classes.

    Each training step ignores the images of the batch except for their number B:
    it draws B surrogate classes uniformly (with the batch's generator), makes one
    fresh random transformation of each class's seed patch and classifies it.

    Args:
        encoder: f, the backbone (``feature_dim`` attribute).
        seed_patches: the N seed patches x_i, (N, 3, p, p) uint8 or float in [0, 1],
            e.g. from ``pretext.sample_exemplar_patches``; patch i is class i.
        recipe: the transformations T (output size = the encoder's input size).
    """

    def __init__(self, encoder: nn.Module, seed_patches: torch.Tensor, recipe: ViewRecipe | None = None):
        super().__init__()
        if seed_patches.ndim != 4 or seed_patches.shape[1] != 3 or seed_patches.shape[0] < 2:
            raise ValueError(
                f"seed_patches must have shape (N, 3, p, p) with N >= 2 surrogate classes, got "
                f"{tuple(seed_patches.shape)}; sample them with pretext.sample_exemplar_patches"
            )
        self.encoder = encoder
        self.register_buffer("seed_patches", seed_patches)
        self.classifier = nn.Linear(encoder.feature_dim, seed_patches.shape[0])
        self.recipe = recipe or exemplar_cifar()

    @property
    def n_classes(self) -> int:
        return self.seed_patches.shape[0]

    def surrogate_samples(self, classes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random transformation T x_i of the seed patch of each class i in ``classes``: (B, 3, S, S)."""
        return augment(self.seed_patches[classes], self.recipe, generator)

    def training_loss(self, batch) -> dict:
        draw_device = batch.generator.device
        classes = torch.randint(self.n_classes, (len(batch.images),), generator=batch.generator,
                                device=draw_device).to(batch.images.device)
        logits = self.classifier(self.encoder(self.surrogate_samples(classes, batch.generator)))
        loss = F.cross_entropy(logits, classes)
        accuracy = (logits.argmax(1) == classes).float().mean().item()
        return {"loss": loss, "surrogate accuracy": accuracy}
