"""Context Prediction (Doersch et al. 2015): where does the second patch sit relative to the first?

A patch is taken from the image, a 3x3 grid is placed around it and one of its 8
neighbours is picked (``context_pairs``: gaps between the
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

from ..checks import check_float_images, check_non_negative, check_positive_int, unit_float
from ..patch_sampling import crop_square_patches, random_ints, random_normal
from ..runs import MethodEntry, per_profile

NEIGHBOUR_OFFSETS = torch.tensor([[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]])
"""(8, 2) grid offsets (drow, dcol) of neighbour label 0..7: row-major around the centre, skipping it."""


def drop_colours(
    patches: torch.Tensor, noise_scale: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Colour dropping of Doersch et al. (2015): keep one random colour channel per patch.

    Chromatic aberration lets a network tell where a patch sits in the image from
    the colour fringes alone; the paper removes this shortcut by keeping one of the
    three channels and replacing the two others with Gaussian noise whose standard
    deviation is ~1/100 of the kept channel's. Here the noise has the kept channel's
    mean (images are in [0, 1], not mean-subtracted) and std noise_scale * its std.

    Args:
        patches: float (M, 3, h, w).
        noise_scale: noise std relative to the kept channel's std (0.01 in the paper).
        generator: random source of the kept channel and the noise.

    Returns:
        patches (M, 3, h, w) with exactly one original channel each.
    """
    check_float_images(patches, "patches")
    if patches.shape[1] != 3:
        raise ValueError(f"colour dropping needs 3 colour channels, got {patches.shape[1]}; pass RGB patches")
    check_non_negative(noise_scale, "noise_scale", "0.01 (as in the paper)")
    m = patches.shape[0]
    kept = random_ints(0, 2, (m,), generator, patches.device)
    kept_channel = patches[torch.arange(m, device=patches.device), kept]
    mean = kept_channel.mean(dim=(-2, -1)).reshape(m, 1, 1, 1)
    std = kept_channel.std(dim=(-2, -1)).reshape(m, 1, 1, 1)
    noise = mean + noise_scale * std * random_normal(tuple(patches.shape), generator, patches.device, patches.dtype)
    keep_mask = (torch.arange(3, device=patches.device) == kept[:, None]).reshape(m, 3, 1, 1)
    return torch.where(keep_mask, patches, noise)


def context_pairs(
    images: torch.Tensor,
    patch_size: int = 8,
    gap: int = 2,
    jitter: int = 1,
    colour_dropping: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A centre patch, one of its eight neighbours and the neighbour's position (Doersch et al., 2015).

    A 3x3 grid of patch_size patches spaced by ``gap`` pixels (grid step
    patch_size + gap) is placed at a uniformly random position that fits the
    image; the label drawn uniformly from 0..7 selects the neighbour at grid offset
    NEIGHBOUR_OFFSETS[label]. Both patches are then shifted independently by a
    random integer in [-jitter, jitter] per axis, so that the network cannot solve
    the task by continuing edges across the gap. The paper uses 96 px patches with
    48 px gaps and up to 7 px jitter on ImageNet; the defaults (8, 2, 1) fit CIFAR:
    3*8 + 2*2 + 2*1 = 30 <= 32.

    Args:
        images: x, float (N, C, H, W).
        patch_size: side of each patch in pixels.
        gap: pixels between neighbouring patches of the grid.
        jitter: largest random shift per axis of each patch.
        colour_dropping: apply ``drop_colours`` to every patch (off by default).
        generator: random source of positions, labels, jitter and colour dropping.

    Returns:
        centre_patches (N, C, p, p), neighbour_patches (N, C, p, p) and labels (N,) long in 0..7.
    """
    check_float_images(images)
    check_positive_int(patch_size, "patch_size", "8")
    check_non_negative(gap, "gap", "0 (patches edge to edge)")
    check_non_negative(jitter, "jitter", "0 (no jitter)")
    n, _, height, width = images.shape
    step = patch_size + gap
    needed = 3 * patch_size + 2 * gap + 2 * jitter
    if needed > min(height, width):
        raise ValueError(
            f"the 3x3 patch grid needs 3*patch_size + 2*gap + 2*jitter = {needed} px but the images are "
            f"{height}x{width}; lower patch_size, gap or jitter (CIFAR: 8, 2, 1)"
        )
    device = images.device
    grid_top = random_ints(jitter, height - needed + jitter, (n,), generator, device)
    grid_left = random_ints(jitter, width - needed + jitter, (n,), generator, device)
    labels = random_ints(0, 7, (n,), generator, device)
    offsets = NEIGHBOUR_OFFSETS.to(device)[labels]
    shifts = random_ints(-jitter, jitter, (4, n), generator, device)
    centre_top = grid_top + step + shifts[0]
    centre_left = grid_left + step + shifts[1]
    neighbour_top = grid_top + (1 + offsets[:, 0]) * step + shifts[2]
    neighbour_left = grid_left + (1 + offsets[:, 1]) * step + shifts[3]
    image_index = torch.arange(n, device=device)
    centre = crop_square_patches(images, image_index, centre_top, centre_left, patch_size)
    neighbour = crop_square_patches(images, image_index, neighbour_top, neighbour_left, patch_size)
    if colour_dropping:
        centre = drop_colours(centre, generator=generator)
        neighbour = drop_colours(neighbour, generator=generator)
    return centre, neighbour, labels


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
        colour_dropping: keep one random colour channel per patch (``drop_colours``).
        pairs_per_image: independent pairs cut from every image of a batch.
    """

    def __init__(self, encoder: nn.Module, hidden_dim: int = 512, patch_size: int = 8, gap: int = 2,
                 jitter: int = 1, colour_dropping: bool = False, pairs_per_image: int = 1):
        super().__init__()
        check_positive_int(pairs_per_image, "pairs_per_image", "4")
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
        centre, neighbour, labels = self.make_pairs(unit_float(batch.images), batch.generator)
        logits = self(centre, neighbour)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean().item()}


def build(profile, train_data, *, hidden_dim: int, patch_size: int, gap: int, jitter: int,
          colour_dropping: bool, pairs_per_image: int) -> ContextPrediction:
    return ContextPrediction(profile.encoder(), hidden_dim=hidden_dim, patch_size=patch_size, gap=gap, jitter=jitter,
                             colour_dropping=colour_dropping, pairs_per_image=pairs_per_image)


ENTRY = MethodEntry(
    name="context_prediction", title="Context Prediction", chapter="book/pretext/context_prediction.ipynb", order=2,
    build=build, summary="predicting where a neighbouring patch lies (Doersch et al. 2015)",
    training=per_profile(quick=dict(epochs=30)),
    settings=per_profile(dict(hidden_dim=512, patch_size=8, gap=2, jitter=1, colour_dropping=False,
                              pairs_per_image=4)))
