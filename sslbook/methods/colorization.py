"""Colorful Image Colorization (Zhang, Isola & Efros 2016): predict the quantised ab colours of
CIE Lab from the lightness L, as a distribution over Q ab bins, with class rebalancing.

    L_cl(Z^, Z) = - sum_{h,w} v(Z_{h,w}) sum_q Z_{h,w,q} log Z^_{h,w,q},   v(Z_{h,w}) = w_{q*},
    q* = argmax_q Z_{h,w,q},   w ∝ ((1 - lambda) p~ + lambda / Q)^-1  with  E_p~[w] = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..pretext import ab_bin_index, annealed_mean, encode_ab, lab_to_rgb, rgb_to_lab


def lightness_input(images: torch.Tensor) -> torch.Tensor:
    """The network input of the colorization task: L / 100 - 0.5, (N, 1, H, W), for float RGB in [0, 1].

    L of CIE Lab lies in [0, 100] (Zhang et al., 2016); the shift and scale put it
    around zero, the job the RGB normalisation does for colour encoders.
    """
    return rgb_to_lab(images)[:, :1] / 100 - 0.5


class LightnessEncoder(nn.Module):
    """An encoder built with ``in_channels=1`` that sees only the lightness of RGB images.

    It takes float RGB images in [0, 1] like every encoder of the book, so the shared
    evaluation (kNN, linear probe, alignment) runs on it unchanged: each image is
    measured through its grayscale version, the only input a colorization network sees.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.feature_dim = encoder.feature_dim

    def forward_stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.forward_stages(lightness_input(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(lightness_input(images))


def colorization_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-rebalanced multinomial cross-entropy L_cl (Zhang, Isola & Efros, 2016, eq. 2).

    The paper sums over the pixels (h, w) of an image; here the loss is the mean over
    all N*H*W pixels, so its scale does not depend on the resolution or the batch size.

    Args:
        logits: the network's scores (N, Q, H, W); Z^ = softmax over the Q bins.
        targets: Z, the soft-encoded true colours (N, Q, H, W), e.g. from ``pretext.encode_ab``.
        weights: w (Q,), the rebalancing weight of each bin (``pretext.rebalancing_weights``);
            each pixel is weighted by v(Z_hw) = w at the bin q* = argmax_q Z_hwq.

    Returns:
        The scalar loss.
    """
    if logits.ndim != 4 or logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must both have shape (N, Q, H, W), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}; encode the targets at the resolution of the predictions"
        )
    if weights.shape != (logits.shape[1],):
        raise ValueError(
            f"weights must have shape (Q,) = ({logits.shape[1]},), got {tuple(weights.shape)}; "
            "pass one rebalancing weight per ab bin"
        )
    if (weights < 0).any():
        raise ValueError("weights must be non-negative; build them with pretext.rebalancing_weights")
    log_probabilities = F.log_softmax(logits.float(), dim=1)  # log Z^
    cross_entropy = -(targets * log_probabilities).sum(dim=1)  # - sum_q Z_hwq log Z^_hwq
    pixel_weights = weights.to(logits.device, log_probabilities.dtype)[targets.argmax(dim=1)]  # v(Z_hw)
    return (pixel_weights * cross_entropy).mean()


def ab_bin_counts(images: torch.Tensor, centres: torch.Tensor, step: float = 10.0,
                  batch_size: int = 500) -> torch.Tensor:
    """Pixels of the images (uint8, or float in [0, 1]) that fall into each ab bin, (Q,) long.

    The same counts as ``pretext.in_gamut_bins_for``, found faster: the bins are the
    cells of a square grid of side ``step``, so the nearest bin centre of a pixel is
    the centre of the cell its ab value falls in (``pretext.ab_bin_index``), a table
    look-up instead of distances to all Q centres. Fast enough for a whole data set.

    Args:
        images: x, (N, 3, H, W).
        centres: the in-gamut bin centres (Q, 2) of ``pretext.ab_bin_centres(step)``.
        step: their grid step.
        batch_size: images converted to Lab at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}; pass e.g. 500")
    cells = ab_bin_index(centres, step)
    if not torch.allclose(cells.to(centres.dtype) * step, centres):
        raise ValueError(f"centres must lie on the grid of step {step}; pass pretext.ab_bin_centres(step={step})")
    low = cells.min(dim=0).values
    extent = cells.max(dim=0).values - low + 1
    table = torch.full((int(extent[0] * extent[1]),), -1, dtype=torch.long, device=centres.device)
    offsets = cells - low
    table[offsets[:, 0] * extent[1] + offsets[:, 1]] = torch.arange(len(centres), device=centres.device)
    counts = torch.zeros(len(centres), dtype=torch.long, device=centres.device)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size].to(centres.device)
        chunk = chunk.float() / 255 if chunk.dtype == torch.uint8 else chunk
        ab = rgb_to_lab(chunk)[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)
        pixel_cells = ab_bin_index(ab, step) - low
        inside = ((pixel_cells >= 0) & (pixel_cells < extent)).all(dim=1)
        bins = table[(pixel_cells[:, 0] * extent[1] + pixel_cells[:, 1]).clamp(0, len(table) - 1)]
        if not inside.all() or (bins < 0).any():
            raise ValueError(
                "some pixels fall into ab cells that are not among the centres; pass the complete in-gamut "
                "centres of pretext.ab_bin_centres(step) for the same step"
            )
        counts += torch.bincount(bins, minlength=len(centres))
    return counts


class Colorization(nn.Module):
    """The colorization pretext task: an L-encoder, a small decoder, bin logits at reduced resolution.

    The encoder's last feature map (4x4 on 32x32 images) is upsampled bilinearly to
    ``target_size`` and a 3x3 conv (BN, ReLU) and a 1x1 conv give Q logits per
    position. The targets Z are the ab channels averaged down to ``target_size``
    (the paper predicts at a quarter of the input resolution: 8x8 for CIFAR) and
    soft-encoded over the k = 5 nearest bins with sigma = 5.

    Args:
        encoder: a backbone built with ``in_channels=1``; it is wrapped in ``LightnessEncoder``.
        centres: the Q ab bin centres (Q, 2), from ``pretext.ab_bin_centres``.
        weights: the rebalancing weights w (Q,), from ``pretext.rebalancing_weights``.
        target_size: side of the predicted colour map.
        hidden_dim: channels of the decoder's hidden layer.
        sigma, k: soft encoding of the targets (``pretext.encode_ab``).
        recipe: optional augmentation of the colour images before L and ab are split
            (geometric only: colour jitter would change the targets).
    """

    def __init__(self, encoder: nn.Module, centres: torch.Tensor, weights: torch.Tensor, target_size: int = 8,
                 hidden_dim: int = 128, sigma: float = 5.0, k: int = 5, recipe: ViewRecipe | None = None):
        super().__init__()
        if centres.ndim != 2 or centres.shape[1] != 2 or weights.shape != (centres.shape[0],):
            raise ValueError(
                f"centres must be (Q, 2) and weights (Q,), got {tuple(centres.shape)} and {tuple(weights.shape)}; "
                "pass ab_bin_centres() and rebalancing_weights(counts) for the same bins"
            )
        if target_size < 1:
            raise ValueError(f"target_size must be >= 1, got {target_size}; pass 8 for 32x32 images")
        self.encoder = LightnessEncoder(encoder)
        n_bins = centres.shape[0]
        self.decoder = nn.Sequential(
            nn.Conv2d(encoder.feature_dim, hidden_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, n_bins, 1),
        )
        self.register_buffer("centres", centres.float())
        self.register_buffer("weights", weights.float())
        self.target_size = target_size
        self.sigma, self.k = sigma, k
        self.recipe = recipe

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Bin scores (N, Q, target_size, target_size) from float RGB images (only their L is used)."""
        feature_map = self.encoder.forward_stages(images)[-1]
        upsampled = F.interpolate(feature_map, size=(self.target_size, self.target_size), mode="bilinear",
                                  align_corners=False)
        return self.decoder(upsampled)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """Z: soft-encoded ab (N, Q, target_size, target_size) of float RGB images, in float32."""
        ab = rgb_to_lab(images.float())[:, 1:]
        ab = F.adaptive_avg_pool2d(ab, self.target_size)
        return encode_ab(ab, self.centres, self.sigma, self.k)

    def training_loss(self, batch) -> torch.Tensor:
        images = (augment(batch.images, self.recipe, batch.generator) if self.recipe is not None
                  else batch.images.float() / 255)
        return colorization_loss(self.logits(images), self.targets(images), self.weights)

    @torch.no_grad()
    def colorize(self, images: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
        """Colour the grayscale version of float RGB images: their own L, ab decoded by the annealed mean.

        The ab map is upsampled bilinearly to the image size; the result is clamped to
        [0, 1] for display, since Lab colours can fall outside the sRGB cube. Call
        ``.eval()`` first so that batch normalisation uses its running statistics.
        """
        lightness = rgb_to_lab(images)[:, :1]
        probabilities = torch.softmax(self.logits(images).float(), dim=1)
        ab = annealed_mean(probabilities, self.centres, temperature)
        ab = F.interpolate(ab, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return lab_to_rgb(torch.cat([lightness, ab], dim=1)).clamp(0, 1)
