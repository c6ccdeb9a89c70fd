"""From noise contrastive estimation to contrastive predictive coding.

The pieces shared by the NCE, CPC and CPC v2 chapters:

- NCE (Gutmann & Hyvarinen 2010): the logit ``G(x) = log p_m(x) - log(nu p_n(x))``
  of the data-versus-noise classifier, a small unnormalised density model with a
  learnable log-normaliser ``c``, and its true log-partition function by
  numerical integration on a grid.
- CPC (van den Oord, Li & Vinyals 2018): the InfoNCE loss of predictions
  ``z^_{t+k} = W_k c_t`` scored against their true targets ``z_{t+k}`` and the
  targets of other rows as negatives, the mutual-information bound
  ``log N - L_N``, a toy data set of noisy sine waves and a sequence model with
  an encoder ``g_enc`` (1-D convolutions) and an autoregressive ``g_ar`` (a GRU).

The loss of CPC v2 (Henaff et al. 2019, ``sslbook.methods.cpc_v2``) is the same
``candidate_logits`` + ``info_nce_from_logits`` pair on patch grids.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------
# Noise contrastive estimation
# ---------------------------------------------------------------------------


# NCE logit (Gutmann & Hyvarinen 2010): h(x) = sigmoid(G(x)) is the probability
# that x came from the data rather than the noise, with
#   G(x) = log p_m(x; theta) - log(nu p_n(x)),   nu = (noise samples) / (data samples).
def nce_logit(log_model: torch.Tensor, log_noise: torch.Tensor, nu: float = 1.0) -> torch.Tensor:
    """The logit G(x) of NCE's logistic regression (Gutmann & Hyvarinen, 2010).

    log_model: log p_m(x; theta), the model's (unnormalised) log-density at x.
    log_noise: log p_n(x), the noise log-density at the same points (same shape).
    nu: the ratio nu of noise to data samples. Feed G of the data points and of
    the noise points to ``sslbook.losses.nce_loss`` (which weighs the data and
    noise terms equally, the objective of Gutmann & Hyvarinen for nu = 1).
    """
    if log_model.shape != log_noise.shape:
        raise ValueError(
            f"log_model and log_noise must have the same shape, got {tuple(log_model.shape)} and "
            f"{tuple(log_noise.shape)}; evaluate both densities at the same points"
        )
    if not nu > 0:
        raise ValueError(f"nu must be > 0, got {nu}; pass the ratio of noise to data samples, such as 1.0")
    return log_model - log_noise - math.log(nu)


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


# ---------------------------------------------------------------------------
# InfoNCE on predictions (CPC, CPC v2)
# ---------------------------------------------------------------------------


# CPC v2 (Henaff et al. 2019), in the survey's notation:
#   L_N = - sum_{i,j,k} log exp(z^_{i+k,j}^T z_{i+k,j})
#                          / ( exp(z^_{i+k,j}^T z_{i+k,j}) + sum_l exp(z^_{i+k,j}^T z_l) )
# Each prediction z^ is scored against its own target z (the positive) and the
# targets z_l of the other N-1 predictions in its group (the negatives).
def candidate_logits(predicted: torch.Tensor, target: torch.Tensor, n_candidates: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Scores z^_a^T z_b of every prediction against N candidate targets (van den Oord et al., 2018).

    predicted: (M, D) predictions z^ (CPC: W_k c_t; CPC v2: W_k c_{i,j}).
    target: (M, D) the true future z of each prediction, paired by row.
    n_candidates: N, the size of each candidate set (1 positive + N-1 negatives).
    The rows are shuffled (with ``generator``) and split into G = M // N groups
    of N (the M % N rows left over are dropped); within a group every target is
    a candidate for every prediction, so the negatives of a prediction are the
    targets of the other rows of its group (other sequences, times, images or
    positions). None: one group of all M rows, in order.
    Returns logits of shape (G, N, N); logits[g, a, b] = z^_a^T z_b, so the
    positive of row a is column a (the diagonal).
    """
    if predicted.ndim != 2 or predicted.shape != target.shape:
        raise ValueError(
            f"predicted and target must be 2-D tensors of the same shape (M, D), got "
            f"{tuple(predicted.shape)} and {tuple(target.shape)}; pair each prediction with its target by row"
        )
    n_rows = predicted.shape[0]
    if n_candidates is None:
        n_candidates = n_rows
        order = torch.arange(n_rows, device=predicted.device)
    else:
        if not 2 <= n_candidates <= n_rows:
            raise ValueError(
                f"n_candidates must be between 2 (one positive and one negative) and the {n_rows} rows, "
                f"got {n_candidates}; pass a smaller N or more predictions"
            )
        device = generator.device if generator is not None else predicted.device
        order = torch.randperm(n_rows, generator=generator, device=device).to(predicted.device)
    if n_candidates < 2:
        raise ValueError(f"need at least 2 rows (one positive and one negative), got M={n_rows}; pass more rows")
    n_groups = n_rows // n_candidates
    kept = order[:n_groups * n_candidates]
    predicted = predicted[kept].view(n_groups, n_candidates, -1)
    target = target[kept].view(n_groups, n_candidates, -1)
    return predicted @ target.transpose(1, 2)  # z^_a^T z_b for all a, b in the group


def info_nce_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """-log exp(s_pos) / (exp(s_pos) + sum_l exp(s_l)), averaged over all predictions (van den Oord et al., 2018).

    logits: (G, N, N) from ``candidate_logits``, positives on the diagonal. The
    survey writes L_N as a sum over (i, j, k); this is the mean, which differs
    by the constant number of terms.
    """
    if logits.ndim != 3 or logits.shape[1] != logits.shape[2]:
        raise ValueError(
            f"logits must have shape (G, N, N) with the positives on the diagonal, got {tuple(logits.shape)}; "
            "build them with candidate_logits"
        )
    n_candidates = logits.shape[1]
    positive_index = torch.arange(n_candidates, device=logits.device).repeat(logits.shape[0])
    return F.cross_entropy(logits.flatten(0, 1), positive_index)


def identification_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of predictions whose highest-scoring candidate is their own target (chance: 1/N)."""
    if logits.ndim != 3 or logits.shape[1] != logits.shape[2]:
        raise ValueError(
            f"logits must have shape (G, N, N) with the positives on the diagonal, got {tuple(logits.shape)}; "
            "build them with candidate_logits"
        )
    positive_index = torch.arange(logits.shape[1], device=logits.device)
    return (logits.argmax(dim=2) == positive_index).float().mean()


# CPC's bound (van den Oord et al. 2018): I(x_{t+k}; c_t) >= log N - L_N.
def mutual_information_bound(loss: torch.Tensor | float, n_candidates: int) -> torch.Tensor:
    """The lower bound log N - L_N on the mutual information, in nats (van den Oord et al., 2018).

    loss: L_N, the InfoNCE loss (mean over predictions) with N candidates.
    n_candidates: N, one positive plus N-1 negatives per prediction.
    """
    if n_candidates < 2:
        raise ValueError(f"n_candidates must be >= 2, got {n_candidates}; the bound needs a negative")
    return math.log(n_candidates) - torch.as_tensor(loss)


# ---------------------------------------------------------------------------
# A sequence model for CPC on 1-D signals
# ---------------------------------------------------------------------------


def check_prediction_steps(prediction_steps: tuple[int, ...], unit: str, example: tuple[int, ...]) -> None:
    """Raise a clear error unless ``prediction_steps`` is a non-empty tuple of offsets k >= 1."""
    if not prediction_steps or min(prediction_steps) < 1:
        raise ValueError(f"prediction_steps must be a non-empty tuple of {unit} k >= 1, got {prediction_steps}; "
                         f"pass e.g. {example}")


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
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0 (a standard deviation), got {noise}; pass e.g. 0.2")
    device = generator.device if generator is not None else torch.device("cpu")
    frequencies = low + (high - low) * torch.rand(n, generator=generator, device=device)
    phases = 2 * math.pi * torch.rand(n, 1, generator=generator, device=device)
    t = torch.arange(length, device=device, dtype=torch.float32)
    clean = torch.sin(2 * math.pi * frequencies[:, None] * t + phases)
    signals = clean + noise * torch.randn(n, length, generator=generator, device=device)
    return signals[:, None, :], frequencies


class SequenceCPC(nn.Module):
    """CPC on 1-D signals (van den Oord, Li & Vinyals, 2018).

    g_enc: a small network on non-overlapping windows of ``window`` samples (a
    strided convolution, then two 1x1 convolutions), so z_t sees samples
    t*window .. (t+1)*window - 1 only and the future latents share no sample
    with the past; g_ar: a GRU, z_{<=t} -> c_t; W_k: one linear map per
    prediction step k, z^_{t+k} = W_k c_t.
    """

    def __init__(self, latent_dim: int = 32, context_dim: int = 32, hidden_channels: int = 32,
                 prediction_steps: tuple[int, ...] = (1, 2, 3, 4), window: int = 8):
        super().__init__()
        check_prediction_steps(prediction_steps, "steps", (1, 2, 3, 4))
        if window < 1:
            raise ValueError(f"window must be >= 1 sample per latent, got {window}; pass e.g. 8")
        self.window = window
        self.g_enc = nn.Sequential(
            nn.Conv1d(1, hidden_channels, kernel_size=self.window, stride=self.window), nn.ReLU(),
            nn.Conv1d(hidden_channels, hidden_channels, kernel_size=1), nn.ReLU(),
            nn.Conv1d(hidden_channels, latent_dim, kernel_size=1),
        )
        self.g_ar = nn.GRU(latent_dim, context_dim, batch_first=True)
        self.prediction_steps = tuple(prediction_steps)
        self.predictors = nn.ModuleList(nn.Linear(context_dim, latent_dim, bias=False)
                                        for _ in self.prediction_steps)  # W_k

    def forward(self, signals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """signals (n, 1, T) -> z (n, T // window, latent_dim) and c (n, T // window, context_dim)."""
        if signals.ndim != 3 or signals.shape[1] != 1 or signals.shape[2] < self.window:
            raise ValueError(
                f"signals must have shape (n, 1, T) with T >= {self.window}, got {tuple(signals.shape)}; "
                "add the channel dimension with signals[:, None, :]"
            )
        z = self.g_enc(signals).transpose(1, 2)  # z_t = g_enc(x)
        c, _ = self.g_ar(z)  # c_t = g_ar(z_{<=t})
        return z, c

    def predictions(self, z: torch.Tensor, c: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each k: (z^_{t+k} = W_k c_t, z_{t+k}) over all sequences and valid t, as (M_k, D) pairs."""
        steps = z.shape[1]
        if max(self.prediction_steps) >= steps:
            raise ValueError(
                f"the largest prediction step {max(self.prediction_steps)} needs more than that many "
                f"encoded steps, got {steps}; use longer signals"
            )
        pairs = []
        for k, predictor in zip(self.prediction_steps, self.predictors):
            predicted = predictor(c[:, :steps - k])  # W_k c_t for t = 0 .. T'-1-k
            target = z[:, k:]  # z_{t+k}
            pairs.append((predicted.flatten(0, 1), target.flatten(0, 1)))
        return pairs

    def loss(self, signals: torch.Tensor, n_candidates: int | None,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """InfoNCE averaged over the prediction steps k, and the identification accuracy."""
        z, c = self(signals)
        losses, accuracies = [], []
        for predicted, target in self.predictions(z, c):
            logits = candidate_logits(predicted, target, n_candidates, generator)
            losses.append(info_nce_from_logits(logits))
            accuracies.append(identification_accuracy(logits))
        return {"loss": torch.stack(losses).mean(), "accuracy": torch.stack(accuracies).mean()}
