"""CMC (Tian, Krishnan & Isola 2019): contrastive multiview coding with the L and ab channels of Lab.

An RGB image is converted to CIE Lab and split into two views: v_1 = L (lightness,
one channel) and v_2 = ab (colour, two channels). Each view has its own encoder;
a linear layer maps each encoder's output to the embedding f(v). The two-sided
loss ``sslbook.losses.cmc_loss`` asks the L embedding of an image to pick out the
ab embedding of the same image among the ab embeddings of the batch, and the
other way round.

Negatives: the other images of the batch (in-batch negatives, as SimCLR). The
paper draws thousands of negatives from a memory bank with NCE instead; the
in-batch form keeps the method small and needs no bank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import check_positive
from ..colour import rgb_to_lab
from ..losses import cmc_loss
from ..runs import MethodEntry, per_profile

LAB_VIEWS = {"L": 1, "ab": 2}  # view name -> number of channels


def lab_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two CMC views of float RGB images in [0, 1] (N, 3, H, W), each scaled to about [-1, 1].

    Returns (L / 50 - 1, ab / 110): the lightness (N, 1, H, W), L in [0, 100], and
    the colour channels (N, 2, H, W), a and b within about [-110, 110] for sRGB colours.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}; pass RGB images")
    lab = rgb_to_lab(images)
    return lab[:, :1] / 50 - 1, lab[:, 1:] / 110


def cmc_cifar() -> ViewRecipe:
    """Light augmentation of the RGB image before the split: random resized crop (0.2, 1) and flip, no colour change.

    Colour jitter or grayscale would alter the ab view (or erase it), so the recipe keeps colours intact.
    """
    return ViewRecipe(crop_scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0)


class LabViewEncoder(nn.Module):
    """An encoder of one Lab view that takes RGB images in [0, 1], like every encoder of the book.

    encoder: a backbone built for the view's channel count (1 for "L", 2 for "ab"),
    e.g. ``SmallCNN(width, feature_dim, in_channels=1)``. view: "L" or "ab".
    """

    def __init__(self, encoder: nn.Module, view: str):
        super().__init__()
        if view not in LAB_VIEWS:
            raise ValueError(f"view must be one of {sorted(LAB_VIEWS)}, got {view!r}; pass view='L' or view='ab'")
        self.encoder, self.view = encoder, view
        self.feature_dim = encoder.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lightness, colour = lab_views(images)
        return self.encoder(lightness if self.view == "L" else colour)


class ConcatenatedEncoder(nn.Module):
    """Several encoders side by side: their features concatenated (feature_dim is the sum)."""

    def __init__(self, *encoders: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.feature_dim = sum(encoder.feature_dim for encoder in encoders)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([encoder(images) for encoder in self.encoders], dim=1)


class CMC(nn.Module):
    """Contrastive multiview coding with two views, L and ab.

    l_backbone, ab_backbone: encoders with 1 and 2 input channels and a ``feature_dim``.
    embedding_dim: the size of f(v) (128 in the paper). temperature: tau.
    recipe: the augmentation applied to the RGB image before it is split into L and ab.
    """

    def __init__(self, l_backbone: nn.Module, ab_backbone: nn.Module, embedding_dim: int = 128,
                 temperature: float = 0.07, recipe: ViewRecipe | None = None):
        super().__init__()
        check_positive(temperature, "temperature", "0.07")
        self.l_encoder = LabViewEncoder(l_backbone, "L")
        self.ab_encoder = LabViewEncoder(ab_backbone, "ab")
        self.l_head = nn.Linear(self.l_encoder.feature_dim, embedding_dim)
        self.ab_head = nn.Linear(self.ab_encoder.feature_dim, embedding_dim)
        self.temperature = temperature
        self.recipe = recipe if recipe is not None else cmc_cifar()

    @property
    def encoder(self) -> ConcatenatedEncoder:
        """Both view encoders, features concatenated: the representation the paper evaluates."""
        return ConcatenatedEncoder(self.l_encoder, self.ab_encoder)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-length embeddings (f(v_1), f(v_2)) of the L and ab views of RGB images in [0, 1]."""
        lightness, colour = lab_views(images)
        z_l = self.l_head(self.l_encoder.encoder(lightness))
        z_ab = self.ab_head(self.ab_encoder.encoder(colour))
        return F.normalize(z_l.float(), dim=1), F.normalize(z_ab.float(), dim=1)

    def training_loss(self, batch) -> torch.Tensor:
        images = augment(batch.images, self.recipe, batch.generator)
        z_l, z_ab = self.embed(images)
        return cmc_loss(z_l, z_ab, self.temperature)


def build(profile, train_data, *, embedding_dim: int, temperature: float) -> CMC:
    l_backbone, ab_backbone = (profile.encoder(in_channels=LAB_VIEWS[view]) for view in ("L", "ab"))
    return CMC(l_backbone, ab_backbone, embedding_dim=embedding_dim, temperature=temperature, recipe=cmc_cifar())


ENTRY = MethodEntry(
    name="cmc", title="CMC", chapter="book/contrastive/cmc.ipynb", order=17, build=build,
    summary="CMC: contrasting the L and ab views of Lab images (Tian et al. 2019)",
    training=per_profile(quick=dict(epochs=10)), settings=per_profile(dict(embedding_dim=128, temperature=0.1)))
