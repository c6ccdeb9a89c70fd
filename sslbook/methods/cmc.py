"""CMC (Tian, Krishnan & Isola 2019): contrastive multiview coding with the channels of Lab as views.

An RGB image is converted to CIE Lab and split into views: by default v_1 = L
(lightness, one channel) and v_2 = ab (colour, two channels); ``views=("L", "a", "b")``
splits the colour too, for three views. Each view has its own encoder; a linear
layer maps each encoder's output to the embedding f(v). The two-sided loss
``sslbook.losses.cmc_loss`` asks the embedding of one view of an image to pick out
the other view's embedding of the same image among those of the batch, and the
other way round; with more than two views ``sslbook.losses.cmc_multiview_loss``
sums it over the pairs of the core-view or the full-graph objective.

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
from ..losses import CMC_GRAPHS, cmc_multiview_loss
from ..runs import MethodEntry, per_profile

LAB_VIEWS = {"L": (0,), "ab": (1, 2), "a": (1,), "b": (2,)}  # view name -> its channels of Lab


def scaled_lab(images: torch.Tensor) -> torch.Tensor:
    """Float RGB images in [0, 1] (N, 3, H, W) as Lab with every channel scaled to about [-1, 1].

    Channel 0 is L / 50 - 1 (L in [0, 100]); channels 1 and 2 are a / 110 and b / 110
    (a and b within about [-110, 110] for sRGB colours).
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}; pass RGB images")
    lab = rgb_to_lab(images)
    return torch.cat([lab[:, :1] / 50 - 1, lab[:, 1:] / 110], dim=1)


def lab_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two default CMC views of float RGB images in [0, 1] (N, 3, H, W), each scaled to about [-1, 1]:
    the lightness L / 50 - 1 (N, 1, H, W) and the colour ab / 110 (N, 2, H, W) (``scaled_lab``)."""
    lab = scaled_lab(images)
    return lab[:, :1], lab[:, 1:]


def cmc_cifar() -> ViewRecipe:
    """Light augmentation of the RGB image before the split: random resized crop (0.2, 1) and flip, no colour change.

    Colour jitter or grayscale would alter the colour views (or erase them), so the recipe keeps colours intact.
    """
    return ViewRecipe(crop_scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0)


def _check_view(view: str) -> None:
    if view not in LAB_VIEWS:
        raise ValueError(f"view must be one of {sorted(LAB_VIEWS)}, got {view!r}; pass e.g. view='L' or view='ab'")


class LabViewEncoder(nn.Module):
    """An encoder of one Lab view that takes RGB images in [0, 1], like every encoder of the book.

    encoder: a backbone built for the view's channel count (1 for "L", "a" or "b", 2 for
    "ab"), e.g. ``SmallCNN(width, feature_dim, in_channels=1)``. view: a key of ``LAB_VIEWS``.
    """

    def __init__(self, encoder: nn.Module, view: str):
        super().__init__()
        _check_view(view)
        self.encoder, self.view = encoder, view
        self.feature_dim = encoder.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(scaled_lab(images)[:, list(LAB_VIEWS[self.view])])


class ConcatenatedEncoder(nn.Module):
    """Several encoders side by side: their features concatenated (feature_dim is the sum)."""

    def __init__(self, *encoders: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.feature_dim = sum(encoder.feature_dim for encoder in encoders)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([encoder(images) for encoder in self.encoders], dim=1)


class CMC(nn.Module):
    """Contrastive multiview coding with one encoder per Lab view.

    backbones: one encoder per view, in the order of ``views``, each with the view's
    channel count as input and a ``feature_dim``. views: names of ``LAB_VIEWS``, at
    least two, no channel in two views; the first is the core view (default L and ab).
    embedding_dim: the size of f(v) (128 in the paper). temperature: tau.
    graph: "core" or "full", which pairs of views the loss contrasts (``cmc_multiview_loss``).
    recipe: the augmentation applied to the RGB image before it is split into views.
    """

    def __init__(self, *backbones: nn.Module, views: tuple[str, ...] = ("L", "ab"), embedding_dim: int = 128,
                 temperature: float = 0.07, graph: str = "core", recipe: ViewRecipe | None = None):
        super().__init__()
        check_positive(temperature, "temperature", "0.07")
        views = tuple(views)
        for view in views:
            _check_view(view)
        channels = [channel for view in views for channel in LAB_VIEWS[view]]
        if len(views) < 2 or len(channels) != len(set(channels)):
            raise ValueError(f"views must be two or more Lab views sharing no channel, got {views}; "
                             "pass e.g. ('L', 'ab') or ('L', 'a', 'b')")
        if len(backbones) != len(views):
            raise ValueError(f"CMC needs one backbone per view: {len(views)} views {views}, got "
                             f"{len(backbones)} backbones")
        if graph not in CMC_GRAPHS:
            raise ValueError(f"graph must be one of {CMC_GRAPHS}, got {graph!r}; pass 'core' or 'full'")
        self.views, self.graph, self.temperature = views, graph, temperature
        self.view_encoders = nn.ModuleList(LabViewEncoder(backbone, view) for backbone, view in zip(backbones, views))
        self.heads = nn.ModuleList(nn.Linear(encoder.feature_dim, embedding_dim) for encoder in self.view_encoders)
        self.recipe = recipe if recipe is not None else cmc_cifar()

    def view_encoder(self, view: str) -> LabViewEncoder:
        """The encoder of one view, taking RGB images."""
        if view not in self.views:
            raise ValueError(f"this CMC has the views {self.views}, not {view!r}; pass one of them")
        return self.view_encoders[self.views.index(view)]

    @property
    def l_encoder(self) -> LabViewEncoder:
        return self.view_encoder("L")

    @property
    def ab_encoder(self) -> LabViewEncoder:
        return self.view_encoder("ab")

    @property
    def encoder(self) -> ConcatenatedEncoder:
        """All view encoders, features concatenated: the representation the paper evaluates."""
        return ConcatenatedEncoder(*self.view_encoders)

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Unit-length embeddings f(v_1), .. f(v_M) of the views of RGB images in [0, 1]."""
        lab = scaled_lab(images)
        return tuple(F.normalize(head(encoder.encoder(lab[:, list(LAB_VIEWS[encoder.view])])).float(), dim=1)
                     for encoder, head in zip(self.view_encoders, self.heads))

    def training_loss(self, batch) -> torch.Tensor:
        images = augment(batch.images, self.recipe, batch.generator)
        return cmc_multiview_loss(self.embed(images), self.temperature, self.graph)


def build(profile, train_data, *, views: tuple[str, ...], graph: str, embedding_dim: int,
          temperature: float) -> CMC:
    backbones = [profile.encoder(in_channels=len(LAB_VIEWS[view])) for view in views]
    return CMC(*backbones, views=views, embedding_dim=embedding_dim, temperature=temperature, graph=graph,
               recipe=cmc_cifar())


ENTRY = MethodEntry(
    name="cmc", title="CMC", chapter="book/contrastive/cmc.ipynb", order=17, build=build,
    summary="CMC: contrasting the L and ab views of Lab images (Tian et al. 2019)",
    training=per_profile(quick=dict(epochs=10)), settings=per_profile(dict(views=("L", "ab"), graph="core", embedding_dim=128, temperature=0.1)))
