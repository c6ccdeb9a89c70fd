"""The toy problems of the NCE and CPC chapters, small enough to know the right answer exactly.

- NCE (Gutmann & Hyvarinen 2010): a small unnormalised 2-D density with a learnable
  log-normaliser c, and its true log-partition function by numerical integration on a grid.
- CPC (van den Oord, Li & Vinyals 2018): noisy sine waves, whose predictable part is their
  frequency and phase.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .checks import check_non_negative


class UnnormalisedMixture(nn.Module):
    """An unnormalised mixture of isotropic Gaussian bumps with a learnable log-normaliser c.

    log p_m(x; theta) = log p0_m(x; alpha) + c  (Gutmann & Hyvarinen 2010), with
    log p0_m(x; alpha) = log sum_k exp(w_k - ||x - mu_k||^2 / (2 s_k^2)) and
    alpha = (mu_k, log s_k, w_k). Nothing forces p_m to integrate to 1: NCE
    learns c so that it does, c -> -log Z(alpha) with Z(alpha) = int p0_m.
    """

    def __init__(self, means: torch.Tensor):
        super().__init__()
        if means.ndim != 2:
            raise ValueError(
                f"means must be a 2-D tensor of shape (K, D), got shape {tuple(means.shape)}; "
                "pass one row per bump"
            )
        n_components = means.shape[0]
        self.means = nn.Parameter(means.clone())  # mu_k
        self.log_scales = nn.Parameter(torch.zeros(n_components, dtype=means.dtype, device=means.device))  # log s_k
        self.log_weights = nn.Parameter(torch.zeros(n_components, dtype=means.dtype, device=means.device))  # w_k
        self.log_normaliser = nn.Parameter(torch.zeros((), dtype=means.dtype, device=means.device))  # c

    def log_unnormalised(self, x: torch.Tensor) -> torch.Tensor:
        """log p0_m(x; alpha) for points x of shape (M, D); returns (M,)."""
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(
                f"x must have shape (M, {self.means.shape[1]}), got {tuple(x.shape)}; pass one point per row"
            )
        squared_distance = (x[:, None, :] - self.means[None]).pow(2).sum(-1)  # ||x - mu_k||^2, (M, K)
        return torch.logsumexp(self.log_weights - squared_distance / (2 * torch.exp(2 * self.log_scales)), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log p_m(x; theta) = log p0_m(x; alpha) + c."""
        return self.log_unnormalised(x) + self.log_normaliser


def log_partition_on_grid(log_density: Callable[[torch.Tensor], torch.Tensor], low: float, high: float,
                          resolution: int = 200) -> torch.Tensor:
    """log Z = log of the integral of exp(log_density) over the square [low, high]^2 (midpoint rule).

    log_density maps points (M, 2) to log-densities (M,), e.g. an unnormalised
    log p0_m. The square must hold all but a negligible part of the mass; the
    result is the log of the sum over resolution^2 cells of exp(log_density(
    cell centre)) times the cell area, computed with a logsumexp.
    """
    if not high > low:
        raise ValueError(f"the grid needs high > low, got low={low}, high={high}; pass e.g. low=-6, high=6")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 cells per side, got {resolution}; pass e.g. 200")
    step = (high - low) / resolution
    centres = low + step * (torch.arange(resolution, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(centres, centres)
    values = log_density(grid)
    return torch.logsumexp(values.double(), dim=0) + 2 * math.log(step)


def sine_sequences(n: int, length: int = 128, frequency_range: tuple[float, float] = (0.02, 0.12),
                   noise: float = 0.2, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy sine waves x_t = sin(2 pi f t + phi) + noise, one frequency f and phase phi per sequence.

    frequency_range: f is drawn uniformly from it, in cycles per sample.
    Returns signals (n, 1, length) and their frequencies (n,), float32 on the
    generator's device (CPU without one).
    """
    low, high = frequency_range
    if not 0 < low <= high < 0.5:
        raise ValueError(
            f"frequency_range must satisfy 0 < low <= high < 0.5 cycles per sample (Nyquist), got "
            f"{frequency_range}; pass e.g. (0.02, 0.12)"
        )
    if n < 1 or length < 2:
        raise ValueError(f"need n >= 1 sequences of length >= 2, got n={n}, length={length}")
    check_non_negative(noise, "noise", "0.2 (a standard deviation)")
    device = generator.device if generator is not None else torch.device("cpu")
    frequencies = low + (high - low) * torch.rand(n, generator=generator, device=device)
    phases = 2 * math.pi * torch.rand(n, 1, generator=generator, device=device)
    t = torch.arange(length, device=device, dtype=torch.float32)
    clean = torch.sin(2 * math.pi * frequencies[:, None] * t + phases)
    signals = clean + noise * torch.randn(n, length, generator=generator, device=device)
    return signals[:, None, :], frequencies
