"""InvaSpread (Ye, Zhang, Yuen & Chang 2019): invariant and spreading instance features.

A batch holds N instances x_i and one augmented copy x^_i of each. A shared network
maps both to L2-normalised 128-d features f_i and f^_i; the loss makes f^_i recognise
its own instance among the N (invariance) and keeps the instances apart from each
other (spreading), with the batch's own features as the instance classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import check_positive, unit_float
from ..losses import invaspread_loss
from ..runs import MethodEntry, per_profile
from .instdisc import instdisc_cifar  # the authors' CIFAR-10 script draws InstDisc's augmentation


class InvaSpread(nn.Module):
    """Invariant and spreading instance features (Ye et al., 2019).

    encoder: the backbone; embedding_dim: size of the linear embedding layer on top
    (128 in the paper), whose outputs are L2-normalised into f; temperature: tau;
    recipe: how the augmented copy x^_i is drawn (by default InstDisc's augmentation, as in the
    authors' CIFAR-10 script).
    """

    def __init__(self, encoder: nn.Module, embedding_dim: int = 128, temperature: float = 0.1,
                 recipe: ViewRecipe | None = None):
        super().__init__()
        check_positive(temperature, "temperature", "0.1")
        self.encoder = encoder
        self.embedding = nn.Linear(encoder.feature_dim, embedding_dim)  # the 128-d layer; f = its output / norm
        self.temperature = temperature
        self.recipe = recipe or instdisc_cifar()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unnormalised embeddings of float images in [0, 1]; the loss normalises them."""
        return self.embedding(self.encoder(images))

    def training_loss(self, batch) -> torch.Tensor:
        originals = unit_float(batch.images)  # x_i
        augmented = augment(batch.images, self.recipe, generator=batch.generator)  # x^_i
        f, f_hat = self.embed(torch.cat([originals, augmented])).chunk(2)
        return invaspread_loss(f, f_hat, self.temperature)


def build(profile, train_data, *, embedding_dim: int, temperature: float) -> InvaSpread:
    return InvaSpread(profile.encoder(), embedding_dim=embedding_dim, temperature=temperature,
                      recipe=instdisc_cifar())


ENTRY = MethodEntry(
    name="invaspread", title="InvaSpread", chapter="book/contrastive/invaspread.ipynb", order=11, build=build,
    summary="InvaSpread: invariance and spreading of instance features (Ye et al. 2019)",
    training=per_profile(quick=dict(epochs=10)), settings=per_profile(dict(embedding_dim=128, temperature=0.1)))
