"""Contrastive predictive coding (van den Oord, Li & Vinyals 2018): its candidate sets, the two
measures read off them, and CPC on 1-D sequences.

A prediction z^_{t+k} = W_k c_t is scored with InfoNCE (``sslbook.losses.info_nce``) against its
true future z_{t+k} and the futures of the other predictions of its candidate set. The sets, the
identification accuracy and the mutual-information bound are shared with CPC v2
(``sslbook.methods.cpc_v2``, the same loss on grids of image patches); ``SequenceCPC`` is the model
of the CPC chapter.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .losses import info_nce


def candidate_sets(predicted: torch.Tensor, target: torch.Tensor, n_candidates: int | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and their targets split into G candidate sets of N rows: (G, N, D) each.

    predicted: (M, D) predictions z^ (CPC: W_k c_t; CPC v2: W_k c_{i,j}).
    target: (M, D) the true future z of each prediction, paired by row.
    n_candidates: N, the size of each set (1 positive + N-1 negatives). The rows are
    shuffled (with ``generator``) and split into G = M // N sets of N (the M % N rows left
    over are dropped); within a set, the targets of the other rows are a prediction's
    negatives (other sequences, times, images or positions), as ``info_nce`` takes them
    without explicit negatives. None: one set of all M rows, in order.
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
    n_sets = n_rows // n_candidates
    kept = order[:n_sets * n_candidates]
    return predicted[kept].view(n_sets, n_candidates, -1), target[kept].view(n_sets, n_candidates, -1)


@torch.no_grad()
def identification_accuracy(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of predictions whose highest-scoring candidate is their own target (chance: 1/N).

    predicted, target: (G, N, D) candidate sets from ``candidate_sets``.
    """
    if predicted.ndim != 3 or predicted.shape != target.shape:
        raise ValueError(
            f"predicted and target must be candidate sets of the same shape (G, N, D), got "
            f"{tuple(predicted.shape)} and {tuple(target.shape)}; build them with candidate_sets"
        )
    scores = predicted @ target.transpose(1, 2)  # z^_a^T z_b for all a, b of a set
    return (scores.argmax(dim=2) == torch.arange(scores.shape[1], device=scores.device)).float().mean()


# CPC's bound (van den Oord et al. 2018): I(x_{t+k}; c_t) >= log N - L_N.
def mutual_information_bound(loss: torch.Tensor | float, n_candidates: int) -> torch.Tensor:
    """The lower bound log N - L_N on the mutual information, in nats (van den Oord et al., 2018).

    loss: L_N, the InfoNCE loss (mean over predictions) with N candidates.
    n_candidates: N, one positive plus N-1 negatives per prediction.
    """
    if n_candidates < 2:
        raise ValueError(f"n_candidates must be >= 2, got {n_candidates}; the bound needs a negative")
    return math.log(n_candidates) - torch.as_tensor(loss)


def check_prediction_steps(prediction_steps: tuple[int, ...], unit: str, example: tuple[int, ...]) -> None:
    """Raise a clear error unless ``prediction_steps`` is a non-empty tuple of offsets k >= 1."""
    if not prediction_steps or min(prediction_steps) < 1:
        raise ValueError(f"prediction_steps must be a non-empty tuple of {unit} k >= 1, got {prediction_steps}; "
                         f"pass e.g. {example}")


def predictive_coding_loss(pairs: list[tuple[torch.Tensor, torch.Tensor]], n_candidates: int | None,
                           generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """InfoNCE averaged over (prediction, target) pairs of rows, and the identification accuracy.

    pairs: one (predicted, target) pair of (M, D) rows per prediction step (and direction),
    each split into its own candidate sets of ``n_candidates``.
    """
    losses, accuracies = [], []
    for predicted, target in pairs:
        sets = candidate_sets(predicted, target, n_candidates, generator)
        losses.append(info_nce(*sets))
        accuracies.append(identification_accuracy(*sets))
    return {"loss": torch.stack(losses).mean(), "accuracy": torch.stack(accuracies).mean()}


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
        return predictive_coding_loss(self.predictions(z, c), n_candidates, generator)
