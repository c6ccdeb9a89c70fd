"""Alignment and uniformity as the training objective (Wang & Isola 2020), on SimCLR's views and head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe
from ..checks import check_non_negative, check_positive
from ..losses import align_loss, uniform_loss
from ..runs import MethodEntry, extended, per_profile
from .simclr import SIMCLR_HEAD, SimCLR, on_simclr_views


class AlignUniform(SimCLR):
    """Train directly for alignment and uniformity (Wang & Isola, 2020).

    Loss on the L2-normalised projections f(x), f(y) of the two views:
    L_align(f; alpha) + lambda (L_uniform(f(x); t) + L_uniform(f(y); t)) / 2,
    with lambda = ``uniformity_weight``. There is no softmax temperature.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 recipe: ViewRecipe | None = None, head_layers: int = 2, alpha: float = 2.0, t: float = 2.0,
                 uniformity_weight: float = 1.0):
        check_positive(alpha, "alpha", "2")
        check_positive(t, "t", "2")
        check_non_negative(uniformity_weight, "uniformity_weight", "1.0")
        super().__init__(encoder, projection_dim, hidden_dim, recipe=recipe, head_layers=head_layers)
        del self.temperature  # SimCLR's NT-Xent temperature plays no part in this loss
        self.alpha, self.t, self.uniformity_weight = alpha, t, uniformity_weight

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> dict:
        x, y = F.normalize(z_i, dim=1), F.normalize(z_j, dim=1)
        alignment = align_loss(x, y, self.alpha)
        uniformity = (uniform_loss(x, self.t) + uniform_loss(y, self.t)) / 2
        return {"loss": alignment + self.uniformity_weight * uniformity,  # the logs stay tensors: no host sync
                "align": alignment.detach(), "uniform": uniformity.detach()}


ENTRY = MethodEntry(
    name="align_uniform", title="Alignment + uniformity", chapter="book/contrastive/alignment_uniformity.ipynb",
    order=8, build=on_simclr_views(AlignUniform),
    summary="L_align + L_uniform as the training objective (Wang and Isola 2020)",
    training=per_profile(quick=dict(epochs=8)), settings=extended(SIMCLR_HEAD, alpha=2, t=2, uniformity_weight=1.0))
