"""Square patches cut from a batch of images at drawn positions, and the draws that place them.

Jigsaw tiles, Context Prediction's patch pairs and Exemplar-CNN's seed patches are all cut
with ``crop_square_patches``. Random draws take an optional ``torch.Generator`` (on the CPU or
on the images' device) and are made on the generator's device, so that a chapter reproduces its
patches whatever device trains.
"""
from __future__ import annotations

import torch


def draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Where to draw random numbers: on the generator's device, else on ``device``."""
    return generator.device if generator is not None else device


def random_ints(
    low: int, high: int, size: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Integers uniform in [low, high] (both included), drawn on the generator's device, returned on ``device``."""
    return torch.randint(low, high + 1, size, generator=generator, device=draw_device(generator, device)).to(device)


def random_normal(
    size: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal values, drawn on the generator's device, returned on ``device``."""
    return torch.randn(size, generator=generator, device=draw_device(generator, device), dtype=dtype).to(device)


def crop_square_patches(
    images: torch.Tensor, image_index: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int
) -> torch.Tensor:
    """Patches (M, C, size, size): patch m is images[image_index[m], :, top[m]:top[m]+size, left[m]:left[m]+size]."""
    offsets = torch.arange(size, device=images.device)
    rows = top[:, None] + offsets
    cols = left[:, None] + offsets
    channels_last = images.permute(0, 2, 3, 1)
    patches = channels_last[image_index[:, None, None], rows[:, :, None], cols[:, None, :]]
    return patches.permute(0, 3, 1, 2)
