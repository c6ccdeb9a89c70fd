"""Building blocks of Part III: self-supervised learning by generating pixels.

Three methods, each hides or damages part of an image x and trains a network
to restore it:

- Denoising autoencoder (Vincent, Larochelle, Bengio and Manzagol, 2008):
  corrupt x into x~ ~ q_D(x~ | x) and reconstruct x from x~ (`corrupt`).
- Context Encoder (Pathak, Kraehenbuehl, Donahue, Darrell and Efros, 2016):
  drop a region M^ of x and inpaint it (`centre_mask`, `random_block_masks`,
  `apply_mask`, `masked_reconstruction_loss`, the adversarial pieces).
- Masked Autoencoder, MAE (He, Chen, Xie, Li, Dollar and Girshick, 2022):
  cut x into patches, hide most of them, encode only the visible ones with a
  Vision Transformer and predict the hidden pixels (`patchify`,
  `random_masking`, `TinyViT`, `MAEDecoder`, `mae_loss`).

The seed survey leaves its generative section empty, so the symbols follow the
papers: x is the image, x~ its corrupted version, M^ the binary region mask of
the Context Encoder, p the patch size, L the number of patches and M the set of
masked patch indices of MAE.

Images are float tensors (N, 3, H, W) with values in [0, 1]. Every random
function takes an optional `torch.Generator`; samples are drawn on the
generator's device and then moved to the images' device, so one seed gives the
same masks on CPU and on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .networks import CIFAR_MEAN, Normalize, conv_bn_relu

CORRUPTION_KINDS = ("gaussian", "masking", "salt_and_pepper")

CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT = 0.999
CONTEXT_ENCODER_ADVERSARIAL_WEIGHT = 0.001


# ---------------------------------------------------------------- helpers


def _check_images(images: Tensor, name: str = "images") -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(
            f"{name} must be a tensor of shape (N, C, H, W), got {shape}; "
            "add a batch dimension with images.unsqueeze(0) for a single image"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be float in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with images.float() / 255"
        )


def _sampling_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def _uniform(shape: Sequence[int], device: torch.device | str | None, generator: torch.Generator | None) -> Tensor:
    """U(0, 1) samples drawn on the generator's device, returned on `device`."""
    sample = torch.rand(tuple(shape), generator=generator, device=_sampling_device(generator, device))
    return sample.to(device)


def _choose_exact_count(
    n: int, n_positions: int, count: int, device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """(n, n_positions) bool with exactly `count` True per row, uniformly at random."""
    order = _uniform((n, n_positions), device, generator).argsort(dim=1)
    chosen = torch.zeros(n, n_positions, dtype=torch.bool, device=device)
    return chosen.scatter_(1, order[:, :count], True)


# ------------------------------------------------- denoising autoencoder


def corrupt(images: Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> Tensor:
    """Sample a corrupted image x~ ~ q_D(x~ | x) (Vincent et al., 2008).

    The denoising autoencoder reconstructs the clean x from x~, so the network
    must learn the structure of images rather than copy its input.

    Args:
        images: x, float (N, C, H, W) in [0, 1].
        kind: the corruption process q_D:
            - "gaussian": additive isotropic noise x~ = clamp(x + e, 0, 1) with
              e ~ N(0, level^2). The clamp to [0, 1] is part of the corruption
              (a corrupted image is still an image), so pixels pushed past 0 or
              1 saturate; the noise added is then smaller than e.
            - "masking": the paper's masking noise. A fraction `level` of the
              pixel positions, chosen independently for each image, is forced to
              0 in every channel.
            - "salt_and_pepper": a fraction `level` of the pixel positions,
              chosen for each image, becomes black (0) or white (1) in every
              channel, by a fair coin flip per position.
        level: nu, the noise strength: the standard deviation for "gaussian"
            (>= 0), the corrupted fraction for the other kinds (in [0, 1)).
            The fractional kinds corrupt exactly round(level * H * W) positions
            per image (Python's round, ties to even).
        generator: optional torch.Generator for reproducible noise.

    Returns:
        x~, a new tensor with the shape, dtype and device of `images`.
    """
    _check_images(images)
    if kind not in CORRUPTION_KINDS:
        raise ValueError(f"unknown corruption kind {kind!r}; use one of {', '.join(map(repr, CORRUPTION_KINDS))}")
    level = float(level)
    if kind == "gaussian":
        if not (math.isfinite(level) and level >= 0):
            raise ValueError(
                f"gaussian level is the noise standard deviation and must be >= 0, got {level}; "
                "pass a non-negative value such as 0.1"
            )
        sample_device = _sampling_device(generator, images.device)
        noise = torch.randn(images.shape, generator=generator, device=sample_device).to(images.device, images.dtype)
        return (images + level * noise).clamp(0.0, 1.0)

    if not 0.0 <= level < 1.0:
        raise ValueError(
            f"{kind} level is the fraction of pixels corrupted and must be in [0, 1), got {level}; "
            "pass a fraction such as 0.25"
        )
    n, _, height, width = images.shape
    count = round(level * height * width)
    chosen = _choose_exact_count(n, height * width, count, images.device, generator).view(n, 1, height, width)
    if kind == "masking":
        return images.masked_fill(chosen, 0.0)
    salt = (_uniform((n, 1, height, width), images.device, generator) < 0.5).to(images.dtype)
    return torch.where(chosen, salt, images)


# ---------------------------------------------------------- context encoder


def centre_mask(height: int, width: int, fraction: float = 0.25, device: torch.device | str | None = None) -> Tensor:
    """Central-region mask M^ of the Context Encoder (Pathak et al., 2016).

    The paper hides a central square covering 1/4 of the image area, that is
    half of each side (64x64 of 128x128); on a 32x32 CIFAR image the default
    hides the central 16x16 block, rows and columns 8..23.

    Args:
        height, width: image size H, W.
        fraction: share of the image area to hide, in (0, 1). Each side of the
            region is round(side * sqrt(fraction)) pixels, centred (any odd
            leftover pixel goes below / to the right).
        device: device of the returned mask.

    Returns:
        M^, bool (H, W), True inside the hidden region.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}; pass the image size such as 32, 32")
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"fraction is the share of the image area to hide and must be in (0, 1), got {fraction}; "
            "pass 0.25 for the paper's central quarter"
        )
    region_height = round(height * math.sqrt(fraction))
    region_width = round(width * math.sqrt(fraction))
    if region_height < 1 or region_width < 1:
        raise ValueError(
            f"fraction {fraction} hides no pixel of a {height}x{width} image; pass a larger fraction such as 0.25"
        )
    top = (height - region_height) // 2
    left = (width - region_width) // 2
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[top : top + region_height, left : left + region_width] = True
    return mask


def random_block_masks(
    n: int,
    height: int,
    width: int,
    block_size: int,
    n_blocks: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-image random-block masks M^ of the Context Encoder (Pathak et al., 2016).

    The paper's "random block" variant removes several smaller, possibly
    overlapping squares instead of the centre, so the network cannot rely on
    the hole always sitting in the same place. Each image gets `n_blocks`
    squares of side `block_size` whose top-left corners are uniform over all
    positions that keep the square inside the image; the mask is their union.

    Args:
        n: number of images N.
        height, width: image size H, W.
        block_size: side of each square, in [1, min(H, W)].
        n_blocks: number of squares per image, >= 1.
        generator: optional torch.Generator for reproducible positions.
        device: device of the returned masks.

    Returns:
        M^, bool (N, H, W), True inside the hidden blocks.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}; pass the batch size")
    if not 1 <= block_size <= min(height, width):
        raise ValueError(
            f"block_size must be in [1, {min(height, width)}] for a {height}x{width} image, got {block_size}; "
            f"pass a smaller block such as {max(1, min(height, width) // 4)}"
        )
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}; pass a positive count such as 4")
    device = torch.device(device) if device is not None else torch.device("cpu")
    tops = (_uniform((n, n_blocks), device, generator) * (height - block_size + 1)).long()
    lefts = (_uniform((n, n_blocks), device, generator) * (width - block_size + 1)).long()
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= tops[..., None]) & (rows < tops[..., None] + block_size)  # (N, B, H)
    in_cols = (cols >= lefts[..., None]) & (cols < lefts[..., None] + block_size)  # (N, B, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1)


def _batched_mask(mask: Tensor, images: Tensor, name: str = "mask") -> Tensor:
    """Checks a (H, W) or (N, H, W) bool mask against images; returns it as (N or 1, 1, H, W)."""
    n, _, height, width = images.shape
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        found = getattr(mask, "dtype", type(mask))
        raise ValueError(f"{name} must be a bool tensor (True = hidden), got {found}; pass mask.bool()")
    if mask.shape not in {(height, width), (n, height, width)}:
        raise ValueError(
            f"{name} must have shape ({height}, {width}) or ({n}, {height}, {width}) to match the images, "
            f"got {tuple(mask.shape)}; build it with centre_mask({height}, {width}) or random_block_masks"
        )
    return mask.to(images.device).view(-1, 1, height, width)


def apply_mask(images: Tensor, mask: Tensor, fill: float | Sequence[float] = CIFAR_MEAN) -> Tensor:
    """Context (1 - M^) * x + M^ * fill given to the Context Encoder (Pathak et al., 2016).

    The paper fills the dropped region with the dataset's mean colour, so the
    hole carries no information and is close to zero after normalisation.

    Args:
        images: x, float (N, C, H, W) in [0, 1].
        mask: M^, bool (H, W) shared by the batch or (N, H, W) per image.
        fill: one value for every channel (0.0 gives a black hole) or one value
            per channel; default the CIFAR-10 mean colour.

    Returns:
        A new tensor like `images` with the masked pixels replaced by `fill`.
    """
    _check_images(images)
    hidden = _batched_mask(mask, images)
    channels = images.shape[1]
    values = [float(fill)] * channels if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if len(values) != channels or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(
            f"fill must be one value or {channels} values in [0, 1], got {fill}; "
            "pass 0.0 or the dataset mean colour such as CIFAR_MEAN"
        )
    colour = torch.tensor(values, dtype=images.dtype, device=images.device).view(1, channels, 1, 1)
    return torch.where(hidden, colour, images)


def masked_reconstruction_loss(
    prediction: Tensor,
    target: Tensor,
    mask: Tensor,
    overlap_weight: float | None = None,
    overlap_width: int = 1,
) -> Tensor:
    """Masked L2 reconstruction loss L_rec of the Context Encoder (Pathak et al., 2016).

        L_rec = || M^ * (x - F((1 - M^) * x)) ||_2^2,

    normalised here to a mean: the squared error averaged over every masked
    element (pixels times channels) of the batch, so its scale does not depend
    on the size of the hole. Pixels outside M^ do not count.

    The paper also predicts a thin band of visible context around the hole and
    weights its error 10 times higher, which makes the inpainting blend with its
    border. With `overlap_weight` set, pixels within `overlap_width` pixels
    (Chebyshev distance) of the hole but outside it get that weight, the hole
    weight 1, and the loss is the weighted mean sum(w * e^2) / sum(w).

    Args:
        prediction: F((1 - M^) * x), float (N, C, H, W), the full predicted image.
        target: x, float (N, C, H, W).
        mask: M^, bool (H, W) or (N, H, W), True on the hidden region.
        overlap_weight: weight of the border band (the paper uses 10), or None
            to score the hole only.
        overlap_width: width of the band in pixels. The paper's band is 7
            pixels wide on 128x128 images (4 in its released code), i.e. 1 to 2
            pixels at CIFAR's 32x32.

    Returns:
        Scalar loss.
    """
    _check_images(prediction, "prediction")
    _check_images(target, "target")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}; decode back to the full image size"
        )
    hole = _batched_mask(mask, prediction).to(prediction.dtype)
    if not bool(hole.any()):
        raise ValueError(
            "mask selects no pixel, so there is nothing to reconstruct; pass a mask with True on the hidden region"
        )
    weights = hole
    if overlap_weight is not None:
        if not overlap_weight > 0:
            raise ValueError(f"overlap_weight must be > 0, got {overlap_weight}; pass 10.0 as in the paper or None")
        if overlap_width < 1:
            raise ValueError(f"overlap_width must be >= 1 pixel, got {overlap_width}; pass 1 for 32x32 images")
        grown = F.max_pool2d(hole, kernel_size=2 * overlap_width + 1, stride=1, padding=overlap_width)
        weights = hole + overlap_weight * (grown - hole)
    weights = weights.expand_as(prediction)
    return (weights * (prediction - target) ** 2).sum() / weights.sum()


class ContextDiscriminator(nn.Module):
    """Small DCGAN-style discriminator D for the Context Encoder's adversarial loss.

    Pathak et al. (2016) add a GAN term so the inpainting looks sharp instead of
    the blurry mean that L2 alone produces. D sees either a real region of x or
    the network's prediction for it: a full 32x32 image or the 16x16 centre
    crop (any side >= 8 works). Three stride-2 4x4 convolutions with LeakyReLU
    (0.2), batch norm after the second and third, then global average pooling
    and a linear layer to one logit.
    """

    def __init__(self, base_channels: int = 32) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}; pass 32")
        c = base_channels
        self.net = nn.Sequential(
            Normalize(),
            nn.Conv2d(3, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            nn.BatchNorm2d(4 * c),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * c, 1),
        )

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1], H, W >= 8 -> logits (N,) of "real"."""
        _check_images(images)
        if min(images.shape[-2:]) < 8:
            raise ValueError(
                f"ContextDiscriminator needs images of side >= 8, got {tuple(images.shape[-2:])}; "
                "pass the full image or a larger crop"
            )
        return self.net(images).squeeze(1)


def adversarial_generator_loss(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator term of L_adv (Goodfellow et al., 2014; Pathak et al., 2016).

    The inpainting network F minimises -log D(F((1 - M^) * x)), i.e. binary
    cross-entropy with target "real" on the discriminator's logits, averaged
    over the batch.

    Args:
        logits_fake: D's logits on predicted regions, any shape.
    """
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


def adversarial_discriminator_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator term of L_adv (Pathak et al., 2016).

    D maximises log D(x) + log(1 - D(F((1 - M^) * x))); as a loss this is the
    batch-mean binary cross-entropy on real regions (target 1) plus the one on
    predicted regions (target 0). Pass predictions detached from F.

    Args:
        logits_real: D's logits on real regions, any shape.
        logits_fake: D's logits on predicted regions, any shape.
    """
    real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    return real + fake


def context_encoder_joint_loss(
    reconstruction_loss: Tensor,
    adversarial_loss: Tensor,
    reconstruction_weight: float = CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT,
    adversarial_weight: float = CONTEXT_ENCODER_ADVERSARIAL_WEIGHT,
) -> Tensor:
    """Joint objective L = lambda_rec * L_rec + lambda_adv * L_adv (Pathak et al., 2016).

    The paper uses lambda_rec = 0.999 and lambda_adv = 0.001: the adversarial
    term only sharpens what the reconstruction term already gets right.

    Args:
        reconstruction_loss: L_rec, e.g. from `masked_reconstruction_loss`.
        adversarial_loss: L_adv for the generator, from `adversarial_generator_loss`.
        reconstruction_weight: lambda_rec >= 0.
        adversarial_weight: lambda_adv >= 0.
    """
    if reconstruction_weight < 0 or adversarial_weight < 0:
        raise ValueError(
            f"loss weights must be >= 0, got lambda_rec={reconstruction_weight}, lambda_adv={adversarial_weight}; "
            "pass the paper's 0.999 and 0.001"
        )
    return reconstruction_weight * reconstruction_loss + adversarial_weight * adversarial_loss


# ------------------------------------------------- convolutional autoencoder


def _conv_up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvAutoencoder(nn.Module):
    """Small convolutional autoencoder for the denoising autoencoder and the Context Encoder.

    `encoder`: CIFAR normalisation, then three stride-2 3x3 convolutions with
    batch norm and ReLU, 3 -> c -> 2c -> 4c channels (c = base_channels = 32),
    taking 32x32 to a 4x4 code. `decoder`: three stride-2 transposed
    convolutions back to 3x32x32 with a sigmoid, so reconstructions lie in
    [0, 1] like the targets. Any H, W divisible by 8 work.

    `features(images)` global-average-pools the code into the (N, 4c) vector
    used for evaluation; `feature_dim` is 4c (128 by default).
    """

    def __init__(self, base_channels: int = 32) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}; pass 32")
        c = base_channels
        self.feature_dim = 4 * c
        self.encoder = nn.Sequential(
            Normalize(),
            conv_bn_relu(3, c, stride=2),
            conv_bn_relu(c, 2 * c, stride=2),
            conv_bn_relu(2 * c, 4 * c, stride=2),
        )
        self.decoder = nn.Sequential(
            _conv_up(4 * c, 2 * c),
            _conv_up(2 * c, c),
            nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> code (N, 4c, H/8, W/8)."""
        _check_images(images)
        if images.shape[-2] % 8 or images.shape[-1] % 8:
            raise ValueError(
                f"ConvAutoencoder needs H and W divisible by 8, got {tuple(images.shape[-2:])}; "
                "resize or crop to 32x32"
            )
        return self.encoder(images)

    def features(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> pooled features (N, feature_dim)."""
        return self.encode(images).mean(dim=(2, 3))

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> reconstruction (N, 3, H, W) in [0, 1]."""
        return self.decoder(self.encode(images))


# ------------------------------------------------------ masked autoencoder


def _check_patch_size(patch_size: int, height: int, width: int) -> None:
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}; pass 4 for 32x32 images")
    if height % patch_size or width % patch_size:
        common = [d for d in range(2, min(height, width)) if height % d == 0 and width % d == 0][:3] or [1]
        raise ValueError(
            f"patch_size {patch_size} does not divide the {height}x{width} image; "
            f"use a divisor such as {', '.join(map(str, common))}"
        )


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping p x p patches (He et al., 2022; Dosovitskiy et al., 2021).

    Patches are listed in raster order over the (H/p) x (W/p) grid: patch
    i = r * (W/p) + c covers rows r*p..r*p+p-1 and columns c*p..c*p+p-1. Each
    patch is flattened pixel by pixel, channels last, (p, p, C) -> p*p*C, as in
    the MAE code.

    Args:
        images: x, float (N, C, H, W).
        patch_size: p, dividing both H and W.

    Returns:
        (N, L, p*p*C) with L = (H/p) * (W/p).
    """
    _check_images(images)
    n, channels, height, width = images.shape
    _check_patch_size(patch_size, height, width)
    p = patch_size
    grid = images.reshape(n, channels, height // p, p, width // p, p)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(n, (height // p) * (width // p), p * p * channels)


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """Inverse of `patchify`: (N, L, p*p*C) patches -> images (N, C, H, W)."""
    _check_patch_size(patch_size, height, width)
    p = patch_size
    n_patches = (height // p) * (width // p)
    if patches.ndim != 3 or patches.shape[1] != n_patches or patches.shape[2] % (p * p):
        raise ValueError(
            f"patches must have shape (N, {n_patches}, {p}*{p}*C) for a {height}x{width} image with "
            f"patch_size {p}, got {tuple(patches.shape)}; pass the output of patchify(images, {p})"
        )
    n, channels = patches.shape[0], patches.shape[2] // (p * p)
    grid = patches.reshape(n, height // p, width // p, p, p, channels)
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(n, channels, height, width)


def masked_patch_count(n_patches: int, mask_ratio: float) -> int:
    """Number of patches MAE hides: |M| = round(L * mask_ratio) (He et al., 2022).

    Python's round (ties to even) on L * mask_ratio. The MAE reference code
    instead keeps int(L * (1 - mask_ratio)) patches; the two agree whenever
    L * mask_ratio is an integer, except where floating point bites the
    truncation: for L = 20 and mask_ratio = 0.9, 20 * (1 - 0.9) =
    1.9999999999999996 truncates to 1, so that code hides 19 patches, not 18.

    Args:
        n_patches: L >= 2.
        mask_ratio: in (0, 1); MAE's default is 0.75.

    Returns:
        |M|, with 1 <= |M| <= L - 1 so that something is hidden and something
        stays visible.
    """
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(
            f"mask_ratio must be in (0, 1) (the fraction of patches hidden), got {mask_ratio}; "
            "pass a fraction such as 0.75 (MAE's default)"
        )
    if n_patches < 2:
        raise ValueError(
            f"n_patches must be >= 2 to hide some and show some, got {n_patches}; use a smaller patch_size"
        )
    count = round(n_patches * mask_ratio)
    if not 1 <= count <= n_patches - 1:
        raise ValueError(
            f"mask_ratio {mask_ratio} hides {count} of {n_patches} patches, leaving nothing to "
            f"{'predict' if count == 0 else 'see'}; pass a mask_ratio between {1 / n_patches:.3g} "
            f"and {1 - 1 / n_patches:.3g}"
        )
    return count


def random_masking(
    n: int,
    n_patches: int,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image uniform random patch masking of MAE (He et al., 2022).

    Each image draws L uniform numbers; sorting them gives a random
    permutation `shuffle` of the patch indices. The first L_keep entries are
    the visible patches, the remaining |M| = `masked_patch_count(L, mask_ratio)`
    are masked, so every image hides exactly |M| patches.

    Args:
        n: number of images N.
        n_patches: L.
        mask_ratio: fraction of patches to hide, in (0, 1).
        generator: optional torch.Generator for reproducible masks.
        device: device of the returned tensors.

    Returns:
        keep_indices: long (N, L_keep), L_keep = L - |M|, the visible patch
            indices in shuffled order (feed to `TinyViT.forward_tokens`).
        mask: bool (N, L) in the original patch order, True = masked (in M).
        restore_indices: long (N, L), the inverse permutation of `shuffle`:
            if `tokens` lists the L_keep visible tokens followed by |M| mask
            tokens, gathering it at `restore_indices` along dim 1 puts every
            token back at its patch position.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}; pass the batch size")
    n_masked = masked_patch_count(n_patches, mask_ratio)
    n_keep = n_patches - n_masked
    device = torch.device(device) if device is not None else torch.device("cpu")
    shuffle = _uniform((n, n_patches), device, generator).argsort(dim=1)
    restore_indices = shuffle.argsort(dim=1)
    keep_indices = shuffle[:, :n_keep]
    mask = restore_indices >= n_keep
    return keep_indices, mask, restore_indices


def sincos_position_embedding_2d(
    embed_dim: int, grid_height: int, grid_width: int, device: torch.device | str | None = None
) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings (Vaswani et al., 2017; He et al., 2022).

    For the patch at grid row r and column c, the first embed_dim / 2 entries
    encode r and the second half encode c; each half is
    [sin(pos * w_0), ..., sin(pos * w_{K-1}), cos(pos * w_0), ..., cos(pos * w_{K-1})]
    with K = embed_dim / 4 and w_k = 10000^(-k / K).

    Returns:
        float (grid_height * grid_width, embed_dim), rows in patch raster order.
    """
    if embed_dim < 4 or embed_dim % 4:
        raise ValueError(f"embed_dim must be a positive multiple of 4, got {embed_dim}; pass e.g. 128")
    quarter = embed_dim // 4
    frequencies = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    rows = torch.arange(grid_height, dtype=torch.float64, device=device).repeat_interleave(grid_width)
    cols = torch.arange(grid_width, dtype=torch.float64, device=device).repeat(grid_height)

    def encode(positions: Tensor) -> Tensor:
        angles = positions[:, None] * frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


def _transformer_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    """Pre-norm transformer blocks: x + MSA(LN(x)), then x + MLP(LN(x)) with GELU."""
    if dim % num_heads:
        raise ValueError(f"embedding dim {dim} must be divisible by num_heads {num_heads}; pass num_heads such as 4")
    return nn.ModuleList(
        nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=num_heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for _ in range(depth)
    )


class TinyViT(nn.Module):
    """Small Vision Transformer encoder for MAE on 32x32 images (Dosovitskiy et al., 2021; He et al., 2022).

    Pipeline: CIFAR normalisation, `patchify` (p = 4 gives L = 64 patches), a
    linear patch embedding, fixed 2-D sine-cosine position embeddings, a
    learned [CLS] token (position embedding zero), `depth` pre-norm transformer
    blocks and a final LayerNorm.

    `forward_tokens(images, keep_indices)` runs the blocks on the visible patches
    only: MAE's encoder never sees mask tokens, which is what makes it cheap at
    a 75% mask ratio. `forward(images)` encodes all patches and returns the mean
    of the patch tokens (CLS excluded) as the (N, feature_dim) evaluation
    feature; MAE reports that mean pooling works as well as CLS.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        embed_dim: int = 128,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        _check_patch_size(patch_size, image_size, image_size)
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.n_patches = self.grid_size**2
        self.feature_dim = embed_dim
        self.normalize = Normalize()
        self.patch_embed = nn.Linear(patch_size * patch_size * 3, embed_dim)
        self.register_buffer(
            "position_embedding", sincos_position_embedding_2d(embed_dim, self.grid_size, self.grid_size)[None]
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks = _transformer_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim)

    def forward_tokens(self, images: Tensor, keep_indices: Tensor | None = None) -> Tensor:
        """Encode the visible patches.

        Args:
            images: x, float (N, 3, image_size, image_size) in [0, 1].
            keep_indices: long (N, L_keep) visible patch indices from
                `random_masking`, or None for all L patches.

        Returns:
            (N, 1 + L_keep, embed_dim): the [CLS] token first, then one token per
            visible patch in the order of `keep_indices`.
        """
        _check_images(images)
        if images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"TinyViT was built for (3, {self.image_size}, {self.image_size}) images, got "
                f"{tuple(images.shape[1:])}; resize the images or build TinyViT(image_size=...)"
            )
        tokens = self.patch_embed(patchify(self.normalize(images), self.patch_size)) + self.position_embedding
        if keep_indices is not None:
            if keep_indices.ndim != 2 or keep_indices.shape[0] != images.shape[0] or keep_indices.dtype != torch.long:
                raise ValueError(
                    f"keep_indices must be long (N={images.shape[0]}, L_keep), got {tuple(keep_indices.shape)} "
                    f"{keep_indices.dtype}; pass the first output of random_masking"
                )
            index = keep_indices.to(tokens.device)[..., None].expand(-1, -1, tokens.shape[-1])
            tokens = tokens.gather(1, index)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> mean-pooled patch features (N, feature_dim)."""
        return self.forward_tokens(images)[:, 1:].mean(dim=1)


class MAEDecoder(nn.Module):
    """Light MAE decoder that predicts the pixels of every patch (He et al., 2022).

    Projects the encoder tokens to `decoder_dim`, appends one learned mask
    token per hidden patch, un-shuffles with `restore_indices` so every token
    sits at its patch position, adds fixed sine-cosine position embeddings,
    runs `depth` pre-norm transformer blocks and maps each patch token to
    p*p*3 pixel values (in `patchify` order). The [CLS] token passes through
    the blocks and is dropped from the output.
    """

    def __init__(
        self,
        encoder_dim: int = 128,
        image_size: int = 32,
        patch_size: int = 4,
        decoder_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        _check_patch_size(patch_size, image_size, image_size)
        grid_size = image_size // patch_size
        self.n_patches = grid_size**2
        self.embed = nn.Linear(encoder_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer(
            "position_embedding", sincos_position_embedding_2d(decoder_dim, grid_size, grid_size)[None]
        )
        self.blocks = _transformer_blocks(decoder_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(decoder_dim)
        self.head = nn.Linear(decoder_dim, patch_size * patch_size * 3)

    def forward(self, tokens: Tensor, restore_indices: Tensor) -> Tensor:
        """Predict every patch.

        Args:
            tokens: (N, 1 + L_keep, encoder_dim) from `TinyViT.forward_tokens`,
                [CLS] first.
            restore_indices: long (N, L) from `random_masking`.

        Returns:
            (N, L, p*p*3) predicted patches, comparable with `patchify(x, p)`.
        """
        n = tokens.shape[0]
        if restore_indices.shape != (n, self.n_patches):
            raise ValueError(
                f"restore_indices must have shape ({n}, {self.n_patches}), got {tuple(restore_indices.shape)}; "
                "pass the third output of random_masking for the same batch"
            )
        if tokens.ndim != 3 or not 2 <= tokens.shape[1] <= self.n_patches + 1:
            raise ValueError(
                f"tokens must have shape (N, 1 + L_keep, D) with 1 <= L_keep <= {self.n_patches}, got "
                f"{tuple(tokens.shape)}; pass TinyViT.forward_tokens(images, keep_indices)"
            )
        x = self.embed(tokens)
        cls_token, visible = x[:, :1], x[:, 1:]
        n_masked = self.n_patches - visible.shape[1]
        shuffled = torch.cat([visible, self.mask_token.expand(n, n_masked, -1)], dim=1)
        index = restore_indices.to(x.device)[..., None].expand(-1, -1, x.shape[-1])
        ordered = shuffled.gather(1, index) + self.position_embedding
        x = torch.cat([cls_token, ordered], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))[:, 1:]


def check_patch_mask(mask: Tensor, patches: Tensor) -> Tensor:
    """``mask`` on the device of ``patches`` (N, L, D), after checking it is a bool (N, L) patch mask."""
    if mask.dtype != torch.bool or mask.shape != patches.shape[:2]:
        raise ValueError(
            f"mask must be bool of shape {tuple(patches.shape[:2])} (True = masked), got "
            f"{tuple(mask.shape)} {mask.dtype}; pass the second output of random_masking"
        )
    return mask.to(patches.device)


def mae_loss(
    predicted_patches: Tensor,
    target_patches: Tensor,
    mask: Tensor,
    normalize_target: bool = True,
) -> Tensor:
    """MAE reconstruction loss on masked patches only (He et al., 2022).

        L = (1 / |M|) * sum_{i in M} (1 / (p*p*C)) * || x^_i - x_i ||_2^2,

    where |M| counts the masked patches of the whole batch; visible patches do
    not contribute. With `normalize_target` (MAE's norm_pix_loss, its default)
    each target patch is first standardised by its own pixels,
    x_i <- (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6), with the unbiased
    variance as in the MAE code; this sharpens the learned features.

    Args:
        predicted_patches: x^, float (N, L, p*p*C) from `MAEDecoder`.
        target_patches: x, float (N, L, p*p*C) from `patchify(images, p)`.
        mask: bool (N, L), True = masked, from `random_masking`.
        normalize_target: standardise each target patch first.

    Returns:
        Scalar loss.
    """
    if predicted_patches.shape != target_patches.shape or predicted_patches.ndim != 3:
        raise ValueError(
            f"predicted_patches and target_patches must both be (N, L, D), got {tuple(predicted_patches.shape)} "
            f"and {tuple(target_patches.shape)}; compare the decoder output with patchify(images, patch_size)"
        )
    mask = check_patch_mask(mask, predicted_patches)
    if not bool(mask.any()):
        raise ValueError("mask hides no patch, so the loss is undefined; pass a mask from random_masking")
    target = target_patches
    if normalize_target:
        target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((predicted_patches - target) ** 2).mean(dim=-1)
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum()
