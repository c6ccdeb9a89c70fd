"""Barlow Twins (Zbontar et al. 2021): make the cross-correlation matrix of two views' embeddings the identity.

Two augmented views x^A, x^B of every image go through the same encoder f and
projector g, giving embeddings z^A, z^B (N, D). The loss
L_BT = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2 is computed by
``sslbook.losses.barlow_twins_loss``, where C is the (D, D) cross-correlation
of the batch-standardised embeddings.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..augment import ViewRecipe, byol_cifar, make_views, simclr_cifar
from ..checks import check_non_negative, check_positive
from ..losses import barlow_twins_loss, cross_correlation
from ..networks import projection_mlp
from ..runs import MethodEntry, per_profile


class BarlowTwins(nn.Module):
    """Barlow Twins with encoder f and an MLP projector g (``head_layers`` layers, the last linear).

    encoder: f, with a ``feature_dim`` attribute. projection_dim: D, the size of z
    (8192 in the paper; a few hundred are enough on CIFAR). hidden_dim: width of
    the projector's hidden layers. lambd: lambda, the weight of the off-diagonal
    (redundancy) term. recipe: the views; the default is the paper's choice, BYOL's
    asymmetric pair of augmentations.

    The paper ends the projector with a BatchNorm without affine parameters;
    here ``cross_correlation`` standardises each dimension over the batch itself,
    which is the same operation, so the projector ends with a plain linear layer.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 512, hidden_dim: int = 512, lambd: float = 5e-3,
                 recipe: ViewRecipe | Sequence[ViewRecipe] | None = None, head_layers: int = 3,
                 loss_scale: float = 1.0):
        super().__init__()
        check_non_negative(lambd, "lambd", "5e-3")
        check_positive(loss_scale, "loss_scale", "1.0 (the loss as it is)")
        self.loss_scale = loss_scale  # a constant factor on L_BT (solo-learn's CIFAR recipe: 0.1, with LARS)
        self.encoder = encoder  # f(.)
        self.projector = projection_mlp(encoder.feature_dim, hidden_dim, projection_dim, head_layers)  # g(.)
        self.lambd = lambd
        self.recipe = recipe if recipe is not None else byol_cifar()

    def project(self, views: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)) for a batch of views."""
        return self.projector(self.encoder(views))

    def views(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two augmented views x^A, x^B of every image."""
        view_a, view_b = make_views(images, self.recipe, n_views=2, generator=generator)
        return view_a, view_b

    def training_loss(self, batch) -> torch.Tensor:
        if len(batch.images) < 2:
            raise ValueError(
                f"Barlow Twins needs a batch of at least 2 images to standardise C over the batch, got "
                f"{len(batch.images)}; use a larger batch"
            )
        view_a, view_b = self.views(batch.images, batch.generator)
        # Each view is projected on its own, so the projector's BatchNorm sees one view at a time (as in the paper).
        z_a, z_b = self.project(view_a), self.project(view_b)
        return self.loss_scale * barlow_twins_loss(z_a.float(), z_b.float(), self.lambd)

    @torch.no_grad()
    def correlation_matrix(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """C (D, D) of a batch of images, computed in eval mode: the matrix the loss drives to the identity."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        view_a, view_b = self.views(images.to(device), generator)
        c = cross_correlation(self.project(view_a).float(), self.project(view_b).float())
        self.train(was_training)
        return c


VIEWS = {"symmetric": simclr_cifar, "asymmetric": byol_cifar}  # SimCLR's pair, or BYOL's (the paper's)


def build(profile, train_data, *, projection_dim: int, hidden_dim: int, lambd: float, views: str,
          loss_scale: float) -> BarlowTwins:
    if views not in VIEWS:
        raise ValueError(f"views must be one of {', '.join(VIEWS)}, got {views!r}")
    return BarlowTwins(profile.encoder(), projection_dim=projection_dim, hidden_dim=hidden_dim, lambd=lambd,
                       recipe=VIEWS[views](), loss_scale=loss_scale)


ENTRY = MethodEntry(
    name="barlow_twins", title="Barlow Twins", chapter="book/contrastive/barlow_twins.ipynb", order=15, build=build,
    summary="Barlow Twins: cross-correlation of two views towards the identity (Zbontar et al. 2021)",
    # full: solo-learn's CIFAR recipe (scripts/pretrain/cifar/barlow.yaml): BYOL's asymmetric views,
    # a 2048-2048 projector, the loss scaled by 0.1 and LARS (lr 0.3, batch 256, weight decay 1e-4,
    # eta 0.02, clipped, no decay or ratio for biases and norms), there for 1,000 epochs. LARS keeps
    # each layer's step a fixed fraction of its norm, whatever the size of a D = 2048 loss's gradient.
    # quick: AdamW on SimCLR's symmetric views, as every quick-profile method (tested there).
    training=per_profile(quick=dict(epochs=10), full=dict(optimizer="lars", lr=0.3, weight_decay=1e-4,
                                                          batch_size=256)),
    settings=per_profile(quick=dict(projection_dim=512, hidden_dim=512, lambd=0.02, views="symmetric",
                                    loss_scale=1.0),
                         full=dict(projection_dim=2048, hidden_dim=2048, lambd=5e-3, views="asymmetric",
                                   loss_scale=0.1)))
