"""Corruptions and masks of Part III: what the generative methods hide or damage in an image.

- the denoising autoencoder's corruptions x~ ~ q_D(x~ | x) (`corrupt`; Vincent et al., 2008);
- the Context Encoder's region masks M^ and the context they leave (`centre_mask`,
  `random_block_masks`, `apply_mask`; Pathak et al., 2016);
- MAE's random patch masks over L patches, of which a set M is hidden (`random_masking`;
  He et al., 2022).

Images are float tensors (N, C, H, W) in [0, 1]. Every random function takes an optional
`torch.Generator`; samples are drawn on the generator's device and then moved to the images'
device, so one seed gives the same masks on the CPU and on CUDA.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .checks import check_float_images
from .networks import CIFAR_MEAN

CORRUPTION_KINDS = ("gaussian", "masking", "salt_and_pepper")


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



# ------------------------------------------- denoising autoencoder: corruptions


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
    check_float_images(images)
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


# ------------------------------------------------- Context Encoder: region masks


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


def check_pixel_mask(mask: Tensor, images: Tensor) -> Tensor:
    """A (H, W) or (N, H, W) bool mask M^ checked against the images, as (N or 1, 1, H, W) on their device."""
    n, _, height, width = images.shape
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        found = getattr(mask, "dtype", type(mask))
        raise ValueError(f"mask must be a bool tensor (True = hidden), got {found}; pass mask.bool()")
    if mask.shape not in {(height, width), (n, height, width)}:
        raise ValueError(
            f"mask must have shape ({height}, {width}) or ({n}, {height}, {width}) to match the images, "
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
    check_float_images(images)
    hidden = check_pixel_mask(mask, images)
    channels = images.shape[1]
    values = [float(fill)] * channels if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if len(values) != channels or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(
            f"fill must be one value or {channels} values in [0, 1], got {fill}; "
            "pass 0.0 or the dataset mean colour such as CIFAR_MEAN"
        )
    colour = torch.tensor(values, dtype=images.dtype, device=images.device).view(1, channels, 1, 1)
    return torch.where(hidden, colour, images)


# --------------------------------------------------------- MAE: patch masks


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
            indices in shuffled order (feed to `sslbook.vit.TinyViT.forward_tokens`).
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


def check_patch_mask(mask: Tensor, patches: Tensor) -> Tensor:
    """``mask`` on the device of ``patches`` (N, L, D), after checking it is a bool (N, L) patch mask."""
    if mask.dtype != torch.bool or mask.shape != patches.shape[:2]:
        raise ValueError(
            f"mask must be bool of shape {tuple(patches.shape[:2])} (True = masked), got "
            f"{tuple(mask.shape)} {mask.dtype}; pass the second output of random_masking"
        )
    return mask.to(patches.device)
