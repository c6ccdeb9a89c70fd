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
from ..checks import check_float_images, unit_float
from ..patch_sampling import crop_square_patches, draw_device
from ..runs import MethodEntry, per_profile


def exemplar_cifar() -> ViewRecipe:
    """The surrogate-class transformations for 24 px CIFAR seed patches, resized to 32 px.

    The paper composes translation (up to 0.2 of the patch size), scaling (factor 0.7
    to 1.4), rotation (up to 20 degrees), two contrast changes and a hue shift. Here:
    a random resized crop (translation and scaling; about 0.4 to 1 of the patch area),
    colour jitter on every sample (brightness, contrast, saturation: 0.4; hue: 0.1) and,
    as is common on CIFAR, a horizontal flip. ``sslbook.augment`` has no rotation.
    """
    return ViewRecipe(output_size=32, crop_scale=(0.4, 1.0), flip_p=0.5, jitter_p=1.0, grayscale_p=0.0)


_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 grayscale
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grayscale image, sqrt(G_x^2 + G_y^2).

    Grayscale is the BT.601 luma 0.299 R + 0.587 G + 0.114 B; borders are padded
    by replication, so a flat image has zero gradient everywhere.

    Args:
        images: x, float (N, 3, H, W).

    Returns:
        magnitude (N, H, W).
    """
    check_float_images(images)
    if images.shape[1] != 3:
        raise ValueError(f"gradient_magnitude needs RGB images, got {images.shape[1]} channels; pass (N, 3, H, W)")
    luma = torch.tensor(_LUMA_WEIGHTS, device=images.device, dtype=images.dtype)
    gray = torch.einsum("c,nchw->nhw", luma, images).unsqueeze(1)
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    sobel_x = _SOBEL_X.to(images.device, images.dtype)
    kernels = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1)
    gradients = F.conv2d(padded, kernels)
    return gradients.square().sum(1).sqrt()


def exemplar_patch_weights(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sampling weight of every patch position: the summed squared gradient magnitude inside the patch.

    Dosovitskiy et al. (2014) sample patches with probability proportional to the
    mean squared gradient magnitude within the patch; the sum is proportional to it.

    Args:
        images: x, float (N, 3, H, W).
        patch_size: patch side p.

    Returns:
        weights (N, H - p + 1, W - p + 1); entry [n, r, c] belongs to the patch with top-left (r, c).
    """
    check_float_images(images)
    height, width = images.shape[-2:]
    if not 1 <= patch_size <= min(height, width):
        raise ValueError(
            f"patch_size must lie in [1, {min(height, width)}] for {height}x{width} images, got {patch_size}; "
            "pass e.g. 24 for CIFAR"
        )
    energy = gradient_magnitude(images).square().unsqueeze(1)
    return F.avg_pool2d(energy, patch_size, stride=1).squeeze(1) * patch_size**2


def sample_exemplar_patches(
    images: torch.Tensor, n_patches: int, patch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seed patches of Exemplar-CNN, drawn where the gradient is large (Dosovitskiy et al., 2014).

    Every patch position of every image is a candidate with weight from
    ``exemplar_patch_weights`` (summed squared Sobel magnitude inside the patch).
    n_patches distinct candidates are drawn without replacement, each draw with
    probability proportional to its weight among those left (Gumbel top-k), so a
    patch without any gradient is never drawn. Each patch later becomes one
    surrogate class by random augmentation (``ExemplarCNN``). The paper cuts 32 px patches
    from 96 px STL images; for CIFAR 32x32 images we cut 24 px patches (about 3/4
    of the image) and let the augmentation resize them back to 32 px.

    Args:
        images: seed images x, float (N, 3, H, W).
        n_patches: number of patches (surrogate classes).
        patch_size: patch side p in pixels.
        generator: random source of the draw.

    Returns:
        patches (n_patches, 3, p, p), source_index (n_patches,) long (the image of
        each patch) and positions (n_patches, 2) long (top, left) of each patch.
    """
    weights = exemplar_patch_weights(images, patch_size)
    n_positions_h, n_positions_w = weights.shape[-2:]
    flat_weights = weights.flatten()
    n_candidates = int((flat_weights > 0).sum())
    if not 1 <= n_patches <= n_candidates:
        raise ValueError(
            f"n_patches must lie in [1, {n_candidates}] (patch positions with non-zero gradient), got {n_patches}; "
            "pass fewer patches or more (textured) images"
        )
    uniform = torch.rand(flat_weights.shape, generator=generator, device=draw_device(generator, images.device),
                         dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.to(images.device).clamp_min(torch.finfo(torch.float64).tiny)))
    keys = flat_weights.double().log() + gumbel
    chosen = keys.topk(n_patches).indices
    per_image = n_positions_h * n_positions_w
    source_index = chosen // per_image
    top = (chosen % per_image) // n_positions_w
    left = chosen % n_positions_w
    patches = crop_square_patches(images, source_index, top, left, patch_size)
    return patches, source_index, torch.stack([top, left], dim=1)


def sample_seed_patches(
    images: torch.Tensor, n_classes: int, patch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N seed patches x_i, each from a different image, drawn where the gradient is large (Dosovitskiy et al., 2014).

    The paper samples its patches "from different images", each with probability
    proportional to the squared gradient magnitude inside it.
    ``sample_exemplar_patches`` draws positions over all images at once (Gumbel
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
            e.g. from ``sample_exemplar_patches``; patch i is class i.
        recipe: the transformations T (output size = the encoder's input size).
    """

    def __init__(self, encoder: nn.Module, seed_patches: torch.Tensor, recipe: ViewRecipe | None = None):
        super().__init__()
        if seed_patches.ndim != 4 or seed_patches.shape[1] != 3 or seed_patches.shape[0] < 2:
            raise ValueError(
                f"seed_patches must have shape (N, 3, p, p) with N >= 2 surrogate classes, got "
                f"{tuple(seed_patches.shape)}; sample them with sample_exemplar_patches"
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
        classes = torch.randint(self.n_classes, (len(batch.images),), generator=batch.generator,
                                device=batch.generator.device).to(batch.images.device)
        logits = self.classifier(self.encoder(self.surrogate_samples(classes, batch.generator)))
        loss = F.cross_entropy(logits, classes)
        accuracy = (logits.argmax(1) == classes).float().mean().item()
        return {"loss": loss, "surrogate accuracy": accuracy}


def build(profile, train_data, *, n_classes: int, patch_size: int) -> ExemplarCNN:
    seed_patches, _, _ = sample_seed_patches(unit_float(train_data.images), n_classes, patch_size,
                                             generator=torch.Generator().manual_seed(0))
    # the pixels were uint8: stored as such, a quarter of the memory
    return ExemplarCNN(profile.encoder(), (seed_patches * 255).round().to(torch.uint8), exemplar_cifar())


ENTRY = MethodEntry(
    name="exemplar_cnn", title="Exemplar-CNN", chapter="book/pretext/exemplar_cnn.ipynb", order=1, build=build,
    summary="Exemplar-CNN: classifying transformed seed patches (Dosovitskiy et al. 2014)",
    training=per_profile(quick=dict(epochs=8)),
    settings=per_profile(dict(patch_size=24), quick=dict(n_classes=128), full=dict(n_classes=8000)))
