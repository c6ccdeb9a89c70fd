"""SimCLR (Chen et al. 2020): two augmented views, an encoder f, a projection head g, NT-Xent."""
from __future__ import annotations

import torch
from torch import nn

from ..augment import ViewRecipe, make_views, simclr_cifar
from ..distributed import gather
from ..losses import nt_xent
from ..networks import projection_mlp
from ..runs import MethodEntry, extended, per_profile


class SimCLR(nn.Module):
    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, recipe: ViewRecipe | None = None, head_layers: int = 2):
        super().__init__()
        self.encoder = encoder  # f(.)
        self.projector = projection_mlp(encoder.feature_dim, hidden_dim, projection_dim, head_layers)  # g(.)
        self.temperature = temperature
        self.recipe = recipe or simclr_cifar()

    def project(self, views: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(views))

    def pair_loss(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor | dict:
        """The loss on the projections of the two views; SimCLR's variants change only this."""
        return nt_xent(z_i, z_j, self.temperature)

    def training_loss(self, batch) -> torch.Tensor | dict:
        first, second = make_views(batch.images, self.recipe, n_views=2, generator=batch.generator)
        z_i, z_j = self.project(torch.cat([first, second])).chunk(2)
        # The global batch on several processes. float32, as the loop's networks return it: the
        # debiased estimate subtracts nearly equal sums, beyond bfloat16's 8 bits of mantissa.
        return self.pair_loss(gather(z_i).float(), gather(z_j).float())


def on_simclr_views(method_class: type[SimCLR]):
    """The ``build`` of SimCLR and of each method that keeps its views and encoder: the profile's
    backbone, SimCLR's CIFAR recipe, and the method's settings as keyword arguments."""
    def build(profile, train_data, **settings) -> SimCLR:
        return method_class(profile.encoder(), recipe=simclr_cifar(), **settings)

    return build


SIMCLR_HEAD = per_profile(dict(projection_dim=128), quick=dict(hidden_dim=256), full=dict(hidden_dim=512))  # g(.)


ENTRY = MethodEntry(
    name="simclr", title="SimCLR", chapter="book/contrastive/simclr.ipynb", order=12, build=on_simclr_views(SimCLR),
    summary="SimCLR: NT-Xent between two augmented views (Chen et al. 2020)",
    training=per_profile(quick=dict(epochs=16)), settings=extended(SIMCLR_HEAD, temperature=0.5))
