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
from ..checks import check_positive, check_positive_int, check_unit_interval, unit_float
from ..colour import lab_to_rgb, rgb_to_lab, srgb_cube_surface
from ..losses import colorization_loss
from ..runs import MethodEntry, per_profile


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


def ab_bin_index(ab: torch.Tensor, step: float = 10.0) -> torch.Tensor:
    """Grid cell of ab values: floor(ab / step + 1/2), so bin q covers [c_q - step/2, c_q + step/2) per axis.

    Args:
        ab: float (..., 2) or any shape of a and b values.
        step: side of the square ab bins (10 in Zhang et al., 2016).
    """
    return torch.floor(ab / step + 0.5).long()


def ab_bin_centres(
    step: float = 10.0,
    samples_per_edge: int = 128,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Centres of the in-gamut ab bins (Zhang et al., 2016, report Q = 313 for step 10).

    The ab plane is cut into squares of side ``step`` centred on multiples of it;
    a bin is in gamut when some sRGB colour (at any lightness L) falls into it.
    rgb_to_lab maps the sRGB cube one-to-one onto a solid whose boundary is the
    image of the cube's faces, and projecting a solid onto the ab plane gives the
    projection of its boundary; so sampling the surface of the cube is enough: a
    grid of samples_per_edge^2 colours on each face and as many along each edge.
    A bin touched only by a tiny sliver of the gamut can still be missed by coarse
    sampling; the default finds all bins that a sampling of 2049^2 colours per face
    finds (262 for step 10).

    Args:
        step: bin side in ab units.
        samples_per_edge: sRGB samples along each side of a face grid (values linspace(0, 1)).
        device, dtype: of the returned centres.

    Returns:
        centres (Q, 2) with columns (a, b), sorted by a then b.
    """
    check_positive(step, "step", "10.0 (as in the paper)")
    if samples_per_edge < 2:
        raise ValueError(f"samples_per_edge must be >= 2, got {samples_per_edge}; pass e.g. 256")
    ab = rgb_to_lab(srgb_cube_surface(samples_per_edge))[1:].reshape(2, -1).T
    bins = torch.unique(ab_bin_index(ab, step), dim=0)
    return (bins * step).to(device=device, dtype=dtype)


def _check_ab(ab: torch.Tensor, centres: torch.Tensor) -> None:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(
            f"ab must have shape (N, 2, H, W), got {tuple(ab.shape)}; take rgb_to_lab(x)[:, 1:]"
        )
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise ValueError(f"centres must have shape (Q, 2), got {tuple(centres.shape)}; use ab_bin_centres()")


def _ab_distances(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (N*H*W, Q) from every pixel's ab value to every bin centre."""
    pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    return torch.cdist(pixels, centres.to(ab.device, ab.dtype), compute_mode="donot_use_mm_for_euclid_dist")


def hard_encode_ab(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest ab bin centre per pixel (the one-hot target, Zhang et al., 2016).

    Args:
        ab: Y, the ab channels (N, 2, H, W).
        centres: bin centres (Q, 2).

    Returns:
        bins (N, H, W) long in 0..Q-1.
    """
    _check_ab(ab, centres)
    n, _, height, width = ab.shape
    return _ab_distances(ab, centres).argmin(dim=1).reshape(n, height, width)


def encode_ab(ab: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0, k: int = 5) -> torch.Tensor:
    """Soft-encoded colour targets Z of Zhang et al. (2016).

    Each pixel's ab value spreads over its k nearest bin centres with weights
    proportional to exp(-d^2 / (2 sigma^2)) (d: distance to the centre), summing
    to 1; all other bins get 0. The paper uses k = 5, sigma = 5.

    Args:
        ab: Y, the ab channels (N, 2, H, W).
        centres: bin centres (Q, 2).
        sigma: Gaussian width in ab units.
        k: number of nearest bins that share each pixel.

    Returns:
        Z (N, Q, H, W), a distribution over the Q bins per pixel. It holds N*Q*H*W
        values: encode targets at a reduced resolution for large batches.
    """
    _check_ab(ab, centres)
    check_positive(sigma, "sigma", "5.0 (as in the paper)")
    n_bins = centres.shape[0]
    if not 1 <= k <= n_bins:
        raise ValueError(f"k must lie in [1, Q={n_bins}], got {k}; pass 5 as in the paper")
    n, _, height, width = ab.shape
    nearest_distances, nearest_bins = _ab_distances(ab, centres).topk(k, dim=1, largest=False)
    weights = torch.softmax(-nearest_distances.square() / (2 * sigma**2), dim=1)
    targets = torch.zeros(n * height * width, n_bins, device=ab.device, dtype=ab.dtype)
    targets.scatter_(1, nearest_bins, weights)
    return targets.reshape(n, height, width, n_bins).permute(0, 3, 1, 2)


def empirical_ab_distribution(
    bin_counts: torch.Tensor, centres: torch.Tensor | None = None, sigma: float | None = None
) -> torch.Tensor:
    """p~: the empirical distribution of ab bins, optionally smoothed in the ab plane (Zhang et al., 2016).

    Without ``sigma`` it is counts / sum(counts). With ``sigma`` (the paper: 5) the
    distribution is convolved with a Gaussian over the bin centres,
    p~_q ∝ sum_q' p_q' exp(-|c_q - c_q'|^2 / (2 sigma^2)), and renormalised.

    Args:
        bin_counts: pixel count per bin (Q,), e.g. from ab_bin_counts.
        centres: bin centres (Q, 2); needed only for smoothing.
        sigma: Gaussian width in ab units, or None for no smoothing.

    Returns:
        p~ (Q,) float, summing to 1.
    """
    if bin_counts.ndim != 1 or (bin_counts < 0).any() or bin_counts.sum() <= 0:
        raise ValueError(
            "bin_counts must be a 1-D tensor of non-negative counts with a positive total, got "
            f"shape {tuple(bin_counts.shape)}; count pixels with ab_bin_counts"
        )
    counts = bin_counts if bin_counts.is_floating_point() else bin_counts.double()
    probabilities = counts / counts.sum()
    if sigma is None:
        return probabilities
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 or None, got {sigma}; pass 5 as in the paper, or None to skip smoothing")
    if centres is None or centres.shape != (bin_counts.shape[0], 2):
        raise ValueError(
            f"smoothing with sigma needs the bin centres of shape (Q, 2) = ({bin_counts.shape[0]}, 2); "
            "pass centres=ab_bin_centres() or sigma=None"
        )
    centres = centres.to(probabilities.device, probabilities.dtype)
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2 * sigma**2))
    smoothed = kernel @ probabilities
    return smoothed / smoothed.sum()


def rebalancing_weights(
    bin_counts: torch.Tensor, lam: float = 0.5, centres: torch.Tensor | None = None, sigma: float | None = None
) -> torch.Tensor:
    """Class-rebalancing weights w of Zhang et al. (2016) for rare colours.

    w ∝ ((1 - lambda) p~ + lambda / Q)^-1, normalised so that E_p~[w] = sum_q p~_q w_q = 1,
    with p~ from ``empirical_ab_distribution`` (the paper smooths with sigma = 5 and
    uses lambda = 0.5). lambda = 1 gives uniform weights; lambda = 0 fully inverts p~.

    Args:
        bin_counts: pixel count per bin (Q,).
        lam: lambda in [0, 1], the mix with the uniform distribution.
        centres, sigma: optional smoothing of p~, see empirical_ab_distribution.

    Returns:
        w (Q,), in the dtype of floating bin_counts, float64 for integer counts.
    """
    check_unit_interval(lam, "lam (lambda)", "0.5 (as in the paper)")
    probabilities = empirical_ab_distribution(bin_counts, centres, sigma)
    mixed = (1 - lam) * probabilities + lam / probabilities.shape[0]
    if (mixed == 0).any():
        raise ValueError("some bins have p~ = 0 and lam = 0, so their weight is infinite; pass lam > 0 such as 0.5")
    weights = 1 / mixed
    return weights / (probabilities * weights).sum()


def annealed_mean(probs: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Decode predicted bin distributions Z into ab values by the annealed mean (Zhang et al., 2016).

    f_T(z)_q = exp(log z_q / T) / sum_q' exp(log z_q' / T) sharpens the distribution
    (T = 1: the mean, T -> 0: the mode); the ab value is then sum_q f_T(z)_q c_q.
    The paper picks T = 0.38.

    Args:
        probs: Z, non-negative (N, Q, H, W); each pixel is renormalised by f_T.
        centres: bin centres c_q (Q, 2).
        temperature: T > 0.

    Returns:
        ab (N, 2, H, W).
    """
    if probs.ndim != 4 or centres.ndim != 2 or probs.shape[1] != centres.shape[0] or centres.shape[1] != 2:
        raise ValueError(
            f"probs must be (N, Q, H, W) and centres (Q, 2) with the same Q, got {tuple(probs.shape)} and "
            f"{tuple(centres.shape)}; pass the softmax over the Q bins of ab_bin_centres()"
        )
    check_positive(temperature, "temperature", "0.38 (as in the paper)")
    if (probs < 0).any():
        raise ValueError("probs must be non-negative; pass softmax(logits, dim=1)")
    sharpened = torch.softmax(torch.log(probs) / temperature, dim=1)
    return torch.einsum("nqhw,qc->nchw", sharpened, centres.to(probs.device, probs.dtype))


def ab_bin_counts(images: torch.Tensor, centres: torch.Tensor, step: float = 10.0,
                  batch_size: int = 500) -> torch.Tensor:
    """Pixels of the images (uint8, or float in [0, 1]) that fall into each ab bin, (Q,) long.

    The same counts as the nearest centres of ``hard_encode_ab``, found faster: the bins
    are the cells of a square grid of side ``step``, so the nearest bin centre of a pixel
    is the centre of the cell its ab value falls in (``ab_bin_index``), a table look-up
    instead of distances to all Q centres. Fast enough for a whole data set. ``counts``
    is the input of ``rebalancing_weights``; ``(counts > 0).sum()`` is the number of bins
    a data set actually uses (compare with Zhang et al.'s Q = 313 for the whole gamut).

    Args:
        images: x, (N, 3, H, W).
        centres: the in-gamut bin centres (Q, 2) of ``ab_bin_centres(step)``.
        step: their grid step.
        batch_size: images converted to Lab at a time.
    """
    check_positive_int(batch_size, "batch_size", "500")
    cells = ab_bin_index(centres, step)
    if not torch.allclose(cells.to(centres.dtype) * step, centres):
        raise ValueError(f"centres must lie on the grid of step {step}; pass ab_bin_centres(step={step})")
    low = cells.min(dim=0).values
    extent = cells.max(dim=0).values - low + 1
    table = torch.full((int(extent[0] * extent[1]),), -1, dtype=torch.long, device=centres.device)
    offsets = cells - low
    table[offsets[:, 0] * extent[1] + offsets[:, 1]] = torch.arange(len(centres), device=centres.device)
    counts = torch.zeros(len(centres), dtype=torch.long, device=centres.device)
    for start in range(0, len(images), batch_size):
        chunk = unit_float(images[start:start + batch_size].to(centres.device))
        ab = rgb_to_lab(chunk)[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)
        pixel_cells = ab_bin_index(ab, step) - low
        inside = ((pixel_cells >= 0) & (pixel_cells < extent)).all(dim=1)
        bins = table[(pixel_cells[:, 0] * extent[1] + pixel_cells[:, 1]).clamp(0, len(table) - 1)]
        if not inside.all() or (bins < 0).any():
            raise ValueError(
                "some pixels fall into ab cells that are not among the centres; pass the complete in-gamut "
                "centres of ab_bin_centres(step) for the same step"
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
        centres: the Q ab bin centres (Q, 2), from ``ab_bin_centres``.
        weights: the rebalancing weights w (Q,), from ``rebalancing_weights``.
        target_size: side of the predicted colour map.
        hidden_dim: channels of the decoder's hidden layer.
        sigma, k: soft encoding of the targets (``encode_ab``).
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
        check_positive_int(target_size, "target_size", "8 (for 32x32 images)")
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
                  else unit_float(batch.images))
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


def build(profile, train_data, *, step: float, lam: float, smoothing_sigma: float, sigma: float, k: int,
          target_size: int, hidden_dim: int, crop_scale: tuple[float, float]) -> Colorization:
    centres = ab_bin_centres(step=step)
    counts = ab_bin_counts(train_data.images, centres, step=step)
    weights = rebalancing_weights(counts, lam=lam, centres=centres, sigma=smoothing_sigma)  # rare colours weigh more
    encoder = profile.encoder(in_channels=1)  # sees L only
    # geometric augmentation only: the colours are the labels
    recipe = ViewRecipe(crop_scale=crop_scale, jitter_p=0.0, grayscale_p=0.0)
    return Colorization(encoder, centres, weights, target_size=target_size, hidden_dim=hidden_dim, sigma=sigma, k=k,
                        recipe=recipe)


ENTRY = MethodEntry(
    name="colorization", title="Colorization", chapter="book/pretext/colorization.ipynb", order=4, build=build,
    summary="predicting the colours of the L channel as ab bins (Zhang et al. 2016)",
    training=per_profile(quick=dict(epochs=6)),
    settings=per_profile(dict(step=10.0, lam=0.5, smoothing_sigma=5.0, sigma=5.0, k=5, target_size=8,
                              crop_scale=(0.6, 1.0)), quick=dict(hidden_dim=64), full=dict(hidden_dim=256)))
