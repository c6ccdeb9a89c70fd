"""Denoising autoencoder (Vincent, Larochelle, Bengio and Manzagol, 2008).

Corrupt each image x into x~ ~ q_D(x~ | x), encode and decode it, and score the
reconstruction against the clean x:

    theta*, theta'* = argmin E_{(x, x~)} L(x, g_theta'(f_theta(x~))),
    L(x, z) = || x - z ||^2  (squared error, averaged over pixels and channels).

f_theta is the convolutional encoder of `ConvAutoencoder`, g_theta' its decoder.
Only f_theta is kept: `AutoencoderFeatures` exposes it as an evaluation encoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..autoencoder import AutoencoderFeatures, ConvAutoencoder
from ..checks import unit_float
from ..losses import denoising_loss
from ..masking import CORRUPTION_KINDS, corrupt
from ..runs import MethodEntry, per_profile


def neighbour_average_fill(corrupted: Tensor) -> Tensor:
    """Baseline denoiser for masking noise, with no learning: fill each dropped pixel from its neighbours.

    Masking noise (Vincent et al., 2008) sets dropped pixels to 0 in every
    channel, so a pixel that is black in all channels of x~ is taken as
    dropped (the network sees the same ambiguity). Each dropped pixel becomes
    the mean of the kept pixels in its 3x3 neighbourhood; a dropped pixel with
    no kept neighbour stays 0, and kept pixels are unchanged.

    Args:
        corrupted: x~, float (N, C, H, W) in [0, 1].

    Returns:
        The filled images, a new tensor like `corrupted`.
    """
    if not isinstance(corrupted, Tensor) or corrupted.ndim != 4 or not corrupted.is_floating_point():
        raise ValueError(
            "corrupted must be a float tensor (N, C, H, W) in [0, 1]; "
            "pass the output of corrupt(images, 'masking', level)"
        )
    channels = corrupted.shape[1]
    kept = (corrupted != 0).any(dim=1, keepdim=True).to(corrupted.dtype)
    window = torch.ones(1, 1, 3, 3, dtype=corrupted.dtype, device=corrupted.device)
    neighbour_sum = F.conv2d(corrupted * kept, window.expand(channels, 1, 3, 3), padding=1, groups=channels)
    neighbour_count = F.conv2d(kept, window, padding=1)
    neighbour_mean = neighbour_sum / neighbour_count.clamp(min=1.0)  # no kept neighbour: the sum is 0, stays 0
    return torch.where(kept.bool(), corrupted, neighbour_mean)


class DenoisingAutoencoder(nn.Module):
    """Train a `ConvAutoencoder` to undo a corruption q_D (Vincent et al., 2008).

    Args:
        autoencoder: the network g_theta'(f_theta(.)); a fresh
            ConvAutoencoder(base_channels=32) when None.
        corruption: the kind of q_D, one of "gaussian", "masking",
            "salt_and_pepper" (see `sslbook.masking.corrupt`).
        level: nu, the noise strength: standard deviation for "gaussian",
            fraction of pixels for the other kinds.
    """

    def __init__(self, autoencoder: ConvAutoencoder | None = None, corruption: str = "masking",
                 level: float = 0.5) -> None:
        super().__init__()
        if corruption not in CORRUPTION_KINDS:
            raise ValueError(
                f"unknown corruption {corruption!r}; use one of {', '.join(map(repr, CORRUPTION_KINDS))}"
            )
        # Checks the level now rather than at the first training step.
        corrupt(torch.zeros(1, 1, 2, 2), corruption, level)
        self.encoder = AutoencoderFeatures(autoencoder if autoencoder is not None else ConvAutoencoder())
        self.corruption = corruption
        self.level = float(level)

    @property
    def autoencoder(self) -> ConvAutoencoder:
        return self.encoder.autoencoder

    def corrupt(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x~ ~ q_D(x~ | x) for float images in [0, 1]."""
        return corrupt(images, self.corruption, self.level, generator)

    def training_loss(self, batch) -> dict[str, Tensor | float]:
        clean = unit_float(batch.images)
        corrupted = self.corrupt(clean, batch.generator)
        reconstruction = self.autoencoder(corrupted)
        loss = denoising_loss(reconstruction, clean)
        with torch.no_grad():
            corrupted_error = denoising_loss(corrupted, clean)
        return {"loss": loss, "corrupted_error": corrupted_error.item()}


def build(profile, train_data, *, base_channels: int, corruption: str, level: float) -> DenoisingAutoencoder:
    return DenoisingAutoencoder(ConvAutoencoder(base_channels=base_channels), corruption=corruption, level=level)


ENTRY = MethodEntry(
    name="dae", title="Denoising autoencoder", chapter="book/generative/dae.ipynb", order=18, build=build,
    summary="denoising autoencoder: reconstructing masked pixels (Vincent et al. 2008)",
    training=per_profile(quick=dict(epochs=16),
                         full=dict(epochs=100, optimizer="adamw", lr=1e-3, weight_decay=1e-4, warmup_epochs=5)),
    settings=per_profile(dict(corruption="masking", level=0.75), quick=dict(base_channels=32),
                         full=dict(base_channels=64)))
