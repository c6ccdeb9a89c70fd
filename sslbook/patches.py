"""Images as sequences of non-overlapping p x p patches, as a Vision Transformer and MAE see them.

Patches are listed in raster order over the (H/p) x (W/p) grid and flattened channels last, as in
the MAE code (He et al., 2022).
"""
from __future__ import annotations

from torch import Tensor

from .checks import check_float_images


def check_patch_size(patch_size: int, height: int, width: int) -> None:
    """Raises unless ``patch_size`` is a positive int dividing both sides of a height x width image."""
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
    check_float_images(images)
    n, channels, height, width = images.shape
    check_patch_size(patch_size, height, width)
    p = patch_size
    grid = images.reshape(n, channels, height // p, p, width // p, p)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(n, (height // p) * (width // p), p * p * channels)


def unpatchify(patches: Tensor, patch_size: int, height: int, width: int) -> Tensor:
    """Inverse of `patchify`: (N, L, p*p*C) patches -> images (N, C, H, W)."""
    check_patch_size(patch_size, height, width)
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


def patch_mean_and_std(patches: Tensor) -> tuple[Tensor, Tensor]:
    """Each patch's own mean and standard deviation sqrt(var + 1e-6), both (N, L, 1).

    The unbiased variance, as in the MAE code (He et al., 2022); patches: (N, L, D) from `patchify`.
    """
    return patches.mean(dim=-1, keepdim=True), (patches.var(dim=-1, keepdim=True) + 1e-6).sqrt()


def standardise_patches(patches: Tensor) -> Tensor:
    """Each patch standardised by its own pixels, x_i <- (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6).

    MAE's normalised pixel targets (norm_pix_loss, He et al., 2022); `patch_mean_and_std` undoes it.
    """
    mean, std = patch_mean_and_std(patches)
    return (patches - mean) / std
