"""SimCLR with hard-negative sampling (Robinson, Chuang, Sra & Jegelka 2021)."""
from __future__ import annotations

import torch
from torch import nn

from ..augment import ViewRecipe
from ..checks import check_non_negative, check_positive, check_tau_plus
from ..losses import hard_negative_nt_xent
from ..runs import MethodEntry, extended, per_profile
from .simclr import SIMCLR_HEAD, SimCLR, on_simclr_views


class HardNegativeSimCLR(SimCLR):
    """SimCLR with hard-negative sampling (Robinson, Chuang, Sra & Jegelka, 2021).

    beta: the concentration beta >= 0 of the negative distribution q_beta;
    tau_plus: the class prior eta^+ of the debiasing term. beta = 0 gives
    `DebiasedSimCLR`; beta = 0 and tau_plus = 0 give SimCLR.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, tau_plus: float = 0.1, beta: float = 1.0,
                 recipe: ViewRecipe | None = None, head_layers: int = 2):
        check_positive(temperature, "temperature", "0.5")
        check_tau_plus(tau_plus)
        check_non_negative(beta, "beta", "1.0")
        super().__init__(encoder, projection_dim, hidden_dim, temperature, recipe, head_layers)
        self.tau_plus, self.beta = tau_plus, beta

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return hard_negative_nt_xent(z_i, z_j, self.temperature, self.tau_plus, self.beta)


ENTRY = MethodEntry(
    name="hard_negatives", title="Hard negatives", chapter="book/contrastive/hard_negatives.ipynb", order=10,
    build=on_simclr_views(HardNegativeSimCLR), summary="SimCLR with hard-negative weighting (Robinson et al. 2021)",
    training=per_profile(quick=dict(epochs=8)),
    settings=extended(SIMCLR_HEAD, temperature=0.5, tau_plus=0.1, beta=1.0))
