"""InstDisc (Wu, Xiong, Yu & Lin 2018): instance discrimination with a memory bank and NCE.

Every training image is its own class. The encoder f and a linear layer map an
augmented image to a unit vector v = f(x) (128-d in the paper); the memory bank
``sslbook.memory_bank.MemoryBank`` holds one entry v_i per image. With
P(i|v) = exp(v_i^T v / tau) / Z, noise P_n = 1/n and h(i, v) = P(i|v) / (P(i|v) + M P_n),

    L_InstDisc = -E[log h(i, v_i^(t-1)) - lambda ||v_i^(t) - v_i^(t-1)||^2] - M E_{P_N}[log(1 - h(i, v'^(t-1)))].

With ``objective="softmax"`` the NCE term is replaced by the exact -log P(i|v) of the paper's eq. 2,
Z = sum_j exp(v_j^T v / tau) over all n entries of the bank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import check_non_negative, check_positive, check_positive_int
from ..losses import instdisc_nce_loss, instdisc_proximal_term, instdisc_softmax_loss
from ..memory_bank import MemoryBank, check_momentum
from ..runs import MethodEntry, per_profile

OBJECTIVES = ("nce", "softmax")  # the paper's NCE with M noise samples; the exact softmax over the bank (eq. 2)


def instdisc_cifar() -> ViewRecipe:
    """The paper's augmentation: random resized crop (0.2, 1), grayscale p = 0.2, colour jitter 0.4, flip.

    InvaSpread's CIFAR-10 script (Ye et al., 2019, official code) draws the same one.
    """
    return ViewRecipe(crop_scale=(0.2, 1.0), jitter_p=1.0, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4,
                      grayscale_p=0.2)


class InstDisc(nn.Module):
    """Non-parametric instance discrimination.

    encoder: the backbone f, with a ``feature_dim`` attribute.
    n_data: n, the number of training images (the bank size; batch.indices index it).
    embedding_dim: the dimension of v (128 in the paper).
    n_noise: M, noise samples per image (4096 in the paper).
    temperature: tau (0.07 in the paper). momentum: m of the bank update (0.5 in the paper).
    proximal_weight: lambda of the proximal term. recipe: the one augmented view per image.
    seed: the seed of the bank's random initial entries.
    objective: "nce" (the paper's training objective, the default) or "softmax", the exact
        -log P(i|v) with Z summed over all n entries (eq. 2; n_noise is then unused).

    Two small departures from the paper's code, both for a bank of a few thousand images. The fc layer
    is followed by a BatchNorm, which centres the embeddings over the batch: an untrained network gives
    every image nearly the same direction, and the centring keeps the entries that the first epoch
    writes into the bank spread out. And the noise draws skip each image's own entry: with n = 5,000
    and M = 4096, an image's M draws would contain its own entry M/n = 0.8 times on average.

    NCE's normaliser Z is estimated once, on the first batch, as the paper's code does:
    Z = n * mean of exp(score) over the batch's positive and noise scores, then kept fixed
    (it is a buffer, so a checkpoint keeps it).
    """

    def __init__(self, encoder: nn.Module, n_data: int, embedding_dim: int = 128, n_noise: int = 4096,
                 temperature: float = 0.07, momentum: float = 0.5, proximal_weight: float = 0.0,
                 recipe: ViewRecipe | None = None, seed: int = 0, objective: str = "nce"):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(map(repr, OBJECTIVES))}, got {objective!r}; pass "
                             "'nce' (the paper's noise-contrastive estimate) or 'softmax' (eq. 2 over the whole bank)")
        check_positive(temperature, "temperature", "0.07")
        check_positive_int(n_noise, "n_noise", "4096")
        check_non_negative(proximal_weight, "proximal_weight", "0 or 30")
        check_momentum(momentum)
        self.encoder = encoder  # f(.)
        # The paper's fc layer to 128-d, followed here by a BatchNorm that centres the embeddings over the batch.
        self.head = nn.Sequential(nn.Linear(encoder.feature_dim, embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.bank = MemoryBank(n_data, embedding_dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("normaliser", torch.tensor(-1.0))  # Z; negative until estimated
        self.n_noise, self.temperature, self.momentum = n_noise, temperature, momentum
        self.proximal_weight = proximal_weight
        # Private, so that describe_run leaves it out and the default run keeps its fingerprint;
        # extra_repr names it in the architecture when it is not NCE.
        self._objective = objective
        self.recipe = recipe if recipe is not None else instdisc_cifar()

    def extra_repr(self) -> str:
        """The objective when it is not the paper's NCE (nothing by default)."""
        return f"objective={self._objective!r}" if self._objective != "nce" else ""

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """v = normalise(fc(f(x))): the unit-length embedding of float images in [0, 1]."""
        return F.normalize(self.head(self.encoder(images)).float(), dim=1)

    def embedder(self) -> nn.Module:
        """The encoder followed by the head (fc and BatchNorm), for ``evaluate.extract_features`` (kNN normalises)."""
        return nn.Sequential(self.encoder, self.head)

    def training_loss(self, batch) -> dict:
        indices = batch.indices
        self.bank.check_indices(indices)
        fresh = self.embed(augment(batch.images, self.recipe, batch.generator))  # v_i^(t)
        stored = self.bank.lookup(indices)  # v_i^(t-1)
        if self._objective == "nce":
            noise = self.bank.sample_negatives(len(indices), self.n_noise, batch.generator, exclude=indices)  # v' ~ P_n
            scores_positive = (fresh * stored).sum(dim=1) / self.temperature  # v_i^T v / tau
            scores_noise = (fresh @ self.bank.features.T / self.temperature).gather(1, noise)  # v'^T v / tau
            if self.normaliser < 0:
                scores = torch.cat([scores_positive[:, None], scores_noise], dim=1).detach()
                self.normaliser.fill_(scores.exp().mean().item() * self.bank.n_data)
            instance_loss = instdisc_nce_loss(scores_positive, scores_noise, self.bank.n_data, self.normaliser)
        else:  # eq. 2: the scores v_j^T v / tau with every entry j of the bank
            scores_bank = fresh @ self.bank.features.T / self.temperature
            instance_loss = instdisc_softmax_loss(scores_bank, indices.to(scores_bank.device))
        proximal = instdisc_proximal_term(fresh, stored, self.proximal_weight)
        bank_cosine = (fresh.detach() * stored).sum(dim=1).mean()  # how far the stored entries lag behind
        self.bank.update(indices, fresh, self.momentum)
        return {"loss": instance_loss + proximal, self._objective: instance_loss.item(), "proximal": proximal.item(),
                "bank_cosine": bank_cosine.item()}


def build(profile, train_data, *, embedding_dim: int, n_noise: int, temperature: float, momentum: float,
          proximal_weight: float, objective: str) -> InstDisc:
    return InstDisc(profile.encoder(), n_data=len(train_data), embedding_dim=embedding_dim, n_noise=n_noise,
                    temperature=temperature, momentum=momentum, proximal_weight=proximal_weight,
                    recipe=instdisc_cifar(), objective=objective)


ENTRY = MethodEntry(
    name="instdisc", title="InstDisc", chapter="book/contrastive/instdisc.ipynb", order=16, build=build,
    summary="InstDisc: instance discrimination against a memory bank (Wu et al. 2018)",
    training=per_profile(quick=dict(epochs=20)),
    settings=per_profile(dict(embedding_dim=128, n_noise=4096, temperature=0.2, momentum=0.5,
                              proximal_weight=10.0, objective="nce")))
