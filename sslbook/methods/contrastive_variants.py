"""SimCLR with another loss: alignment + uniformity, the debiased loss, hard negatives.

The three methods keep everything of `SimCLR` (two views from the same recipe,
the encoder f, the projection head g) and change only the loss computed on the
projections z_i, z_j of the two views:

- `AlignUniform` (Wang & Isola 2020): L_align(f; alpha) + lambda L_uniform(f; t).
- `DebiasedSimCLR` (Chuang et al. 2020): `losses.debiased_nt_xent`.
- `HardNegativeSimCLR` (Robinson et al. 2021): `losses.hard_negative_nt_xent`.

The module also holds what the chapters need to look inside these losses on the
SimCLR layout (views 0..B-1 are the first views of the B images of a batch,
views B..2B-1 the second views): which negatives share the anchor's class
(`false_negative_mask`), the oracle loss that drops them using labels
(`oracle_nt_xent`), and the importance weights of hard-negative sampling
(`hard_negative_weights`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, make_views
from ..checks import check_tau_plus as _check_tau_plus
from ..losses import align_loss, debiased_nt_xent, hard_negative_nt_xent, uniform_loss
from .simclr import SimCLR

# ---------------------------------------------------------------------------
# Input checks.
# ---------------------------------------------------------------------------


def _check_positive(value: float, name: str, example: str) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}; pass a positive {name} such as {example}")


def _check_non_negative(value: float, name: str, example: str) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}; pass a non-negative {name} such as {example}")


def _check_projections(z1: torch.Tensor, z2: torch.Tensor) -> None:
    for z, name in ((z1, "z1"), (z2, "z2")):
        if z.ndim != 2:
            raise ValueError(f"{name} must be a 2-D tensor of shape (B, D), got shape {tuple(z.shape)}; "
                             "pass one projection per image")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}; "
                         "pass the two views of the same B images, paired by row")
    if z1.shape[0] < 2:
        raise ValueError(f"the batch must hold B >= 2 images so that every anchor has a negative, "
                         f"got B={z1.shape[0]}; use a larger batch")


def _check_labels(labels: torch.Tensor, batch_size: int | None = None) -> None:
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor of class indices, got dtype {labels.dtype} and shape "
                         f"{tuple(labels.shape)}; pass one int64 class index per image")
    if batch_size is not None and len(labels) != batch_size:
        raise ValueError(f"labels must hold one class per image, B={batch_size}, got {len(labels)}; "
                         "pass the labels of the images behind z1 and z2")


# ---------------------------------------------------------------------------
# The SimCLR layout: 2B views, anchor a's positive is view (a + B) mod 2B.
# ---------------------------------------------------------------------------


def _negative_mask(batch_size: int, device: torch.device) -> torch.Tensor:
    """(2B, 2B) bool: view k is a negative of anchor a (k is neither a nor a's positive)."""
    views = torch.arange(2 * batch_size, device=device)
    is_negative = torch.ones(2 * batch_size, 2 * batch_size, dtype=torch.bool, device=device)
    is_negative[views, views] = False
    is_negative[views, (views + batch_size) % (2 * batch_size)] = False
    return is_negative


def _scores(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """(2B, 2B) scores f(x)^T f(u) / tau between the L2-normalised views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return z @ z.T / temperature


def false_negative_mask(labels: torch.Tensor) -> torch.Tensor:
    """Which negatives are false negatives (Chuang, Robinson, Lin, Torralba & Jegelka, 2020).

    labels: (B,) class of each image of the batch (used for analysis only, never
    for self-supervised training). Returns a (2B, 2B) bool tensor in the SimCLR
    layout: entry (a, k) is True when view k is one of anchor a's 2B-2 negatives
    u_i and its image has the same class as a's, so that u_i is in fact drawn
    from p_x^+ rather than from the true negative distribution p_x^-.
    """
    _check_labels(labels)
    both_views = torch.cat([labels, labels])
    same_class = both_views[:, None] == both_views[None, :]
    return same_class & _negative_mask(len(labels), labels.device)


# Oracle (Chuang et al. 2020): the unbiased objective when p_x^- is known, here
# from the labels. With N = 2B-2 negatives and T_a the true negatives of anchor a,
#   L_oracle = -log exp(f(x)^T f(x+)) / ( exp(f(x)^T f(x+)) + N * 1/|T_a| sum_{u in T_a} exp(f(x)^T f(u)) )
# with every score divided by tau.
def oracle_nt_xent(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor,
                   temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent with the true negative distribution (Chuang et al., 2020), using labels.

    z1, z2: (B, D) projections f(x), f(x+) of the two views (normalised here).
    labels: (B,) class of each image. temperature: tau. For each of the 2B
    anchors, the same-class negatives are dropped and the others averaged and
    scaled back to N = 2B-2 terms: N g is replaced by N times the mean of
    exp(f(x)^T f(u)/tau) over true negatives u, the quantity that the debiased g
    estimates without labels. Equals `losses.nt_xent` when all labels differ.
    Returns the mean over the 2B anchors.
    """
    _check_projections(z1, z2)
    _check_labels(labels, z1.shape[0])
    _check_positive(temperature, "temperature", "0.5")
    batch_size = z1.shape[0]
    scores = _scores(z1, z2, temperature)
    views = torch.arange(2 * batch_size, device=scores.device)
    positive = scores[views, (views + batch_size) % (2 * batch_size)]
    true_negative = _negative_mask(batch_size, scores.device) & ~false_negative_mask(labels.to(scores.device))
    n_true = true_negative.sum(dim=1)
    if bool((n_true == 0).any()):
        raise ValueError("an anchor has no negative of another class (all images of the batch share one class); "
                         "pass a batch with images of at least two classes")
    n_negatives = 2 * batch_size - 2
    log_sum_true = torch.logsumexp(scores.masked_fill(~true_negative, float("-inf")), dim=1)
    log_mean_true = log_sum_true - n_true.to(scores.dtype).log()
    return (torch.logaddexp(positive, math.log(n_negatives) + log_mean_true) - positive).mean()


# Hard-negative importance weights (Robinson, Chuang, Sra & Jegelka 2021). The
# survey writes the weight of a negative as beta exp(f(x)^T f(x-)) / sum_{x-} exp(f(x)^T f(x-));
# the paper samples negatives from q_beta(x-) ~ exp(beta f(x)^T f(x-)) p(x-), i.e.
#   w_i = N exp(beta s_i) / sum_{k=1..N} exp(beta s_k),   s_i = f(x)^T f(u_i) / tau,
# normalised to mean 1 over the N = 2B-2 negatives of the anchor.
def hard_negative_weights(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                          beta: float = 1.0) -> torch.Tensor:
    """Importance weights of hard-negative sampling (Robinson et al., 2021).

    z1, z2: (B, D) projections of the two views (normalised here); temperature:
    tau; beta: the concentration beta >= 0 (0 gives every negative weight 1).
    Returns (2B, 2B) weights in the SimCLR layout: row a holds w_i for each of
    anchor a's N = 2B-2 negatives (mean 1 over them) and 0 at a itself and at
    a's positive. `losses.hard_negative_nt_xent` replaces sum_i exp(s_i) by
    sum_i w_i exp(s_i) in the debiased estimator g.
    """
    _check_projections(z1, z2)
    _check_positive(temperature, "temperature", "0.5")
    _check_non_negative(beta, "beta", "1.0")
    batch_size = z1.shape[0]
    is_negative = _negative_mask(batch_size, z1.device)
    concentrated = (beta * _scores(z1, z2, temperature)).masked_fill(~is_negative, float("-inf"))
    return (2 * batch_size - 2) * torch.softmax(concentrated, dim=1)


# ---------------------------------------------------------------------------
# Methods: SimCLR's views, encoder f and head g, with another loss on z_i, z_j.
# ---------------------------------------------------------------------------


class _SimCLRWithOtherLoss(SimCLR):
    """SimCLR whose NT-Xent is replaced by ``pair_loss(z_i, z_j)`` (defined by subclasses)."""

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor | dict:
        raise NotImplementedError

    def training_loss(self, batch) -> torch.Tensor | dict:
        first, second = make_views(batch.images, self.recipe, n_views=2, generator=batch.generator)
        z_i, z_j = self.project(torch.cat([first, second])).chunk(2)
        # float32, as the training loop's networks return: the debiased estimate subtracts nearly
        # equal sums and the uniformity averages e^{-t d^2} over B(B-1)/2 pairs, both beyond
        # bfloat16's 8 bits of mantissa.
        return self.pair_loss(z_i.float(), z_j.float())


class AlignUniform(_SimCLRWithOtherLoss):
    """Train directly for alignment and uniformity (Wang & Isola, 2020).

    Loss on the L2-normalised projections f(x), f(y) of the two views:
    L_align(f; alpha) + lambda (L_uniform(f(x); t) + L_uniform(f(y); t)) / 2,
    with lambda = ``uniformity_weight``. There is no softmax temperature.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 recipe: ViewRecipe | None = None, head_layers: int = 2, alpha: float = 2.0, t: float = 2.0,
                 uniformity_weight: float = 1.0):
        _check_positive(alpha, "alpha", "2")
        _check_positive(t, "t", "2")
        _check_non_negative(uniformity_weight, "uniformity_weight", "1.0")
        super().__init__(encoder, projection_dim, hidden_dim, recipe=recipe, head_layers=head_layers)
        del self.temperature  # SimCLR's NT-Xent temperature plays no part in this loss
        self.alpha, self.t, self.uniformity_weight = alpha, t, uniformity_weight

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> dict:
        x, y = F.normalize(z_i, dim=1), F.normalize(z_j, dim=1)
        alignment = align_loss(x, y, self.alpha)
        uniformity = (uniform_loss(x, self.t) + uniform_loss(y, self.t)) / 2
        return {"loss": alignment + self.uniformity_weight * uniformity,
                "align": alignment.item(), "uniform": uniformity.item()}


class DebiasedSimCLR(_SimCLRWithOtherLoss):
    """SimCLR with the debiased contrastive loss (Chuang et al., 2020).

    tau_plus: the class prior eta^+ (the probability that a negative shares the
    anchor's class; 0.1 for the ten balanced classes of CIFAR-10). tau_plus = 0
    gives SimCLR.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, tau_plus: float = 0.1, recipe: ViewRecipe | None = None,
                 head_layers: int = 2):
        _check_positive(temperature, "temperature", "0.5")
        _check_tau_plus(tau_plus)
        super().__init__(encoder, projection_dim, hidden_dim, temperature, recipe, head_layers)
        self.tau_plus = tau_plus

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return debiased_nt_xent(z_i, z_j, self.temperature, self.tau_plus)


class HardNegativeSimCLR(_SimCLRWithOtherLoss):
    """SimCLR with hard-negative sampling (Robinson, Chuang, Sra & Jegelka, 2021).

    beta: the concentration beta >= 0 of the negative distribution q_beta;
    tau_plus: the class prior eta^+ of the debiasing term. beta = 0 gives
    `DebiasedSimCLR`; beta = 0 and tau_plus = 0 give SimCLR.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, tau_plus: float = 0.1, beta: float = 1.0,
                 recipe: ViewRecipe | None = None, head_layers: int = 2):
        _check_positive(temperature, "temperature", "0.5")
        _check_tau_plus(tau_plus)
        _check_non_negative(beta, "beta", "1.0")
        super().__init__(encoder, projection_dim, hidden_dim, temperature, recipe, head_layers)
        self.tau_plus, self.beta = tau_plus, beta

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return hard_negative_nt_xent(z_i, z_j, self.temperature, self.tau_plus, self.beta)
