"""Learning to Count (Noroozi, Pirsiavash & Favaro 2017): a feature counter phi trained so that
the counts of the 2x-downsampled image equal the summed counts of its four tiles.

    L = ||phi(D∘x) - sum_{i=1..4} phi(T_i∘x)||_2^2 + max(0, c - ||phi(D∘y) - sum_{i=1..4} phi(T_i∘x)||_2^2)

D averages 2x2 pixel blocks; with ``downsampling="random"`` each image is halved by a filter drawn
from ``RANDOM_FILTERS``, so that the blur of one fixed filter cannot tell D∘x from the tiles.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import check_float_images, check_positive, check_positive_int, unit_float
from ..losses import counting_loss
from ..patch_sampling import random_ints
from ..runs import MethodEntry, per_profile

DOWNSAMPLINGS = ("area", "random")  # D: always 2x2 averaging, or a filter drawn per image
# The filters of downsampling="random": F.interpolate modes, antialiased where torch offers it.
RANDOM_FILTERS = ("area", "bilinear", "bicubic", "nearest")


def count_views(images: torch.Tensor, other_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The views D∘x, T_i∘x and D∘y of the counting loss (Noroozi et al., 2017).

    D halves the resolution by averaging each 2x2 pixel block (area
    interpolation; for an exact factor 2 this equals bilinear interpolation with
    align_corners=False), so that D∘x has the size of one tile. T_1..T_4 are the
    top-left, top-right, bottom-left and bottom-right quarters of x. y is a
    different image, the contrastive term of the loss (``sslbook.losses.counting_loss``).

    Args:
        images: x, float (N, C, H, W) with even H and W.
        other_images: y, float (N, C, H, W), e.g. x rolled by one along the batch.

    Returns:
        downsampled_x (N, C, H/2, W/2), tiles_x (N, 4, C, H/2, W/2), downsampled_y (N, C, H/2, W/2).
    """
    check_float_images(images)
    check_float_images(other_images, "other_images")
    if images.shape != other_images.shape:
        raise ValueError(
            f"images and other_images must have the same shape, got {tuple(images.shape)} and "
            f"{tuple(other_images.shape)}; pass y = x.roll(1, dims=0) for example"
        )
    n, channels, height, width = images.shape
    if height % 2 or width % 2:
        raise ValueError(
            f"count_views needs even H and W to cut 2x2 tiles, got {height}x{width}; crop one row/column first"
        )
    half_h, half_w = height // 2, width // 2
    tiles = images.reshape(n, channels, 2, half_h, 2, half_w).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n, 4, channels, half_h, half_w)
    return F.avg_pool2d(images, 2), tiles, F.avg_pool2d(other_images, 2)


def downsample_randomly(images: torch.Tensor, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """D∘x with its own filter per image, drawn uniformly from ``RANDOM_FILTERS`` with ``generator``.

    Image n is halved by ``F.interpolate`` with mode RANDOM_FILTERS[filters[n]] (bilinear and bicubic
    with antialias=True; bicubic may overshoot [0, 1] slightly). All filters run on the whole batch,
    so the draw needs no host sync.

    Args:
        images: x, float (N, C, H, W) with even H and W.
        generator: the source of the draws (None: torch's global generator).

    Returns:
        downsampled (N, C, H/2, W/2) and filters (N,), each image's position in ``RANDOM_FILTERS``.
    """
    check_float_images(images)
    n, _, height, width = images.shape
    if height % 2 or width % 2:
        raise ValueError(f"downsample_randomly needs even H and W to halve them, got {height}x{width}; "
                         "crop one row/column first")
    size = (height // 2, width // 2)
    filtered = torch.stack([F.interpolate(images, size=size, mode=mode, antialias=mode in ("bilinear", "bicubic"))
                            for mode in RANDOM_FILTERS])  # (filters, N, C, H/2, W/2)
    filters = random_ints(0, len(RANDOM_FILTERS) - 1, (n,), generator, images.device)
    return filtered[filters, torch.arange(n, device=images.device)], filters


class Counting(nn.Module):
    """The counting pretext task: phi(.) = ReLU(W f(.)) with f the encoder, K non-negative counts.

    The paper's counter is AlexNet with a last ReLU layer of K = 1000 counts and margin c = 10;
    D averages 2x2 pixel blocks (``count_views``), or with downsampling="random" halves each image
    by a filter drawn from ``RANDOM_FILTERS`` (``downsample_randomly``). y is the previous image of
    the batch (x rolled by one), so every image serves as the contrastive y of another.

    Args:
        encoder: f, the backbone (``feature_dim`` attribute); phi(.) = ReLU(W f(.)).
        n_counts: K, the length of the count vector.
        margin: c > 0 of the contrastive term.
        recipe: optional augmentation of x before the views are cut (None: the image itself).
        downsampling: D, "area" (2x2 averaging, the default) or "random" (a filter drawn per image).
    """

    def __init__(self, encoder: nn.Module, n_counts: int = 1000, margin: float = 10.0,
                 recipe: ViewRecipe | None = None, downsampling: str = "area"):
        super().__init__()
        check_positive_int(n_counts, "n_counts", "1000 (K, as in the paper)")
        check_positive(margin, "margin", "10.0 (c, as in the paper)")
        if downsampling not in DOWNSAMPLINGS:
            raise ValueError(f"downsampling must be one of {', '.join(map(repr, DOWNSAMPLINGS))}, got "
                             f"{downsampling!r}; pass 'area' (2x2 averaging) or 'random' (one of "
                             f"{', '.join(RANDOM_FILTERS)} per image)")
        self.encoder = encoder  # f
        self.counter_head = nn.Linear(encoder.feature_dim, n_counts)  # W
        self.margin = margin
        self.recipe = recipe
        # Private, so that describe_run leaves it out and the default run keeps its fingerprint;
        # extra_repr names it in the architecture when it is not area averaging.
        self._downsampling = downsampling

    def extra_repr(self) -> str:
        """The downsampling when it is not 2x2 averaging (nothing by default)."""
        return f"downsampling={self._downsampling!r}" if self._downsampling != "area" else ""

    def count(self, images: torch.Tensor) -> torch.Tensor:
        """phi(images): (M, K) non-negative counts of float images in [0, 1]."""
        return F.relu(self.counter_head(self.encoder(images)))

    def counts_of_views(self, images: torch.Tensor, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """phi(D∘x) (N, K), phi(T_i∘x) (N, 4, K) and phi(D∘y) (N, K) for float images x, y = x rolled by one.

        generator: draws each image's filter when downsampling is "random" (None: torch's global generator).
        """
        downsampled, tiles, downsampled_other = count_views(images, images.roll(1, dims=0))
        if self._downsampling == "random":  # D by each image's own filter instead; D∘y is D∘x rolled
            downsampled = downsample_randomly(images, generator)[0]
            downsampled_other = downsampled.roll(1, dims=0)
        n = images.shape[0]
        counts = self.count(torch.cat([downsampled, tiles.flatten(0, 1), downsampled_other]))
        counts_downsampled, counts_tiles, counts_other = counts.split([n, 4 * n, n])
        return counts_downsampled, counts_tiles.unflatten(0, (n, 4)), counts_other

    def training_loss(self, batch) -> dict:
        images = (augment(batch.images, self.recipe, batch.generator) if self.recipe is not None
                  else unit_float(batch.images))
        # float32: squared distances of counts lose too much precision in bfloat16
        views = self.counts_of_views(images, batch.generator)
        counts_downsampled, counts_tiles, counts_other = (counts.float() for counts in views)
        loss = counting_loss(counts_downsampled, counts_tiles, counts_other, self.margin)
        return {"loss": loss, "mean total count": counts_downsampled.detach().sum(1).mean().item()}


def build(profile, train_data, *, n_counts: int, margin: float, crop_scale: tuple[float, float],
          downsampling: str) -> Counting:
    return Counting(profile.encoder(), n_counts=n_counts, margin=margin,
                    recipe=ViewRecipe(crop_scale=crop_scale, jitter_p=0.0, grayscale_p=0.0), downsampling=downsampling)


ENTRY = MethodEntry(
    name="counting", title="Learning to Count", chapter="book/pretext/counting.ipynb", order=5, build=build,
    summary="counting visual primitives: tiles add up to the image (Noroozi et al. 2017)",
    training=per_profile(quick=dict(epochs=6)),
    settings=per_profile(dict(n_counts=1000, margin=10.0, crop_scale=(0.6, 1.0), downsampling="area")))
