"""SimCLR with the debiased contrastive loss (Chuang et al. 2020)."""
from __future__ import annotations

import torch
from torch import nn

from ..augment import ViewRecipe
from ..checks import check_positive, check_tau_plus
from ..losses import debiased_nt_xent
from ..runs import MethodEntry, extended, per_profile
from .simclr import SIMCLR_HEAD, SimCLR, on_simclr_views


class DebiasedSimCLR(SimCLR):
    """SimCLR with the debiased contrastive loss (Chuang et al., 2020).

    tau_plus: the class prior eta^+ (the probability that a negative shares the
    anchor's class; 0.1 for the ten balanced classes of CIFAR-10). tau_plus = 0
    gives SimCLR.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, tau_plus: float = 0.1, recipe: ViewRecipe | None = None,
                 head_layers: int = 2):
        check_positive(temperature, "temperature", "0.5")
        check_tau_plus(tau_plus)
        super().__init__(encoder, projection_dim, hidden_dim, temperature, recipe, head_layers)
        self.tau_plus = tau_plus

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        return debiased_nt_xent(z_i, z_j, self.temperature, self.tau_plus)


ENTRY = MethodEntry(
    name="debiased", title="Debiased contrastive", chapter="book/contrastive/debiased.ipynb", order=9,
    build=on_simclr_views(DebiasedSimCLR), summary="SimCLR with the debiased contrastive loss (Chuang et al. 2020)",
    training=per_profile(quick=dict(epochs=8)), settings=extended(SIMCLR_HEAD, temperature=0.5, tau_plus=0.1))
