"""SimCLRv2 (Chen, Kornblith, Swersky, Norouzi & Hinton 2020): big self-supervised models as
semi-supervised learners, in three steps.

1. Pre-train with SimCLR's NT-Xent loss, with a deeper (3-layer) projection head g.
2. Fine-tune on the few labelled images, starting from the head's middle: the encoder f
   plus the first layer of g, then a new linear classifier.
3. Self-distil: a student of the same architecture learns, on the unlabelled images,
   to match the fine-tuned teacher's softened predictions,
       L_distill = - sum_i sum_y P^T(y | x_i; tau) log P^S(y | x_i; tau),
       P(y | x_i; tau) = exp(f^task(x_i)[y] / tau) / sum_y' exp(f^task(x_i)[y'] / tau).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import check_positive
from ..data import ImageData, balanced_subset
from ..evaluate import extract_features
from ..losses import distillation_loss
from ..runs import MethodEntry, per_profile
from .simclr import SimCLR, on_simclr_views


class SimCLRv2(SimCLR):
    """SimCLR with SimCLRv2's three-layer projection head (Chen et al., 2020b).

    encoder: f; projection_dim, hidden_dim: sizes of the head g (Linear-BN-ReLU twice,
    then Linear); temperature: tau of NT-Xent; recipe: the view recipe.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512,
                 temperature: float = 0.5, recipe: ViewRecipe | None = None):
        super().__init__(encoder, projection_dim, hidden_dim, temperature, recipe, head_layers=3)

    def fine_tuning_network(self) -> "HeadLayerEncoder":
        """A copy of the encoder with the head's first layer (Linear, BN, ReLU) on top:
        where SimCLRv2 fine-tunes from. The pre-trained model itself is left unchanged."""
        return HeadLayerEncoder(copy.deepcopy(self.encoder), copy.deepcopy(self.projector[:3]))


class HeadLayerEncoder(nn.Module):
    """An encoder f followed by one layer of a projection head; ``feature_dim`` is that layer's width."""

    def __init__(self, encoder: nn.Module, head_layer: nn.Sequential):
        super().__init__()
        self.encoder = encoder
        self.head_layer = head_layer
        self.feature_dim = head_layer[0].out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head_layer(self.encoder(images))


class Distillation(nn.Module):
    """SimCLRv2's distillation step: train ``student`` to match a frozen ``teacher`` on unlabelled images.

    teacher, student: networks from float images in [0, 1] to class logits f^task;
    temperature: tau; recipe: the augmentation applied to each image (both networks
    see the same view). The labels of the batch are never used.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, temperature: float = 1.0,
                 recipe: ViewRecipe | None = None):
        super().__init__()
        check_positive(temperature, "temperature", "1.0")
        self.teacher = teacher
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.student = student
        self.temperature = temperature
        self.recipe = recipe or fine_tuning_cifar()

    def train(self, mode: bool = True) -> "Distillation":
        """Switch the student's mode; the teacher always stays in eval mode (fixed batch-norm statistics)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def training_loss(self, batch) -> torch.Tensor:
        views = augment(batch.images, self.recipe, generator=batch.generator)
        with torch.no_grad():
            teacher_logits = self.teacher(views)
        return distillation_loss(self.student(views), teacher_logits, self.temperature)


def fine_tuning_cifar() -> ViewRecipe:
    """The light augmentation of SimCLRv2's fine-tuning and distillation: random crop and flip, no colour."""
    return ViewRecipe(crop_scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0)


def classifier(encoder: nn.Module, n_classes: int) -> nn.Sequential:
    """An encoder with a linear classifier on its ``feature_dim`` outputs: images -> logits."""
    return nn.Sequential(encoder, nn.Linear(encoder.feature_dim, n_classes))


def labelled_fraction(data: ImageData, fraction: float, seed: int = 0) -> ImageData:
    """A class-balanced subset holding ``fraction`` of ``data`` (the "1% / 10% of the labels")."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}; pass e.g. 0.01 for 1% of the labels")
    n_classes = len(data.classes)
    per_class = round(fraction * len(data) / n_classes)
    if per_class < 1:
        raise ValueError(f"{fraction:.2%} of {len(data)} images leaves no image per class; use a larger fraction")
    return balanced_subset(data, per_class, seed)


def classification_accuracy(network: nn.Module, data: ImageData) -> float:
    """Top-1 accuracy (in %) of a network from images to logits on ``data``."""
    logits = extract_features(network, data.images)
    return 100.0 * (logits.argmax(dim=1) == data.labels.cpu()).float().mean().item()


ENTRY = MethodEntry(
    name="simclr_v2", title="SimCLRv2", chapter="book/contrastive/simclr_v2.ipynb", order=13,
    build=on_simclr_views(SimCLRv2), summary="SimCLRv2 pre-training with the three-layer head (Chen et al. 2020b)",
    training=per_profile(quick=dict(epochs=8)),
    settings=per_profile(dict(projection_dim=128, temperature=0.5), quick=dict(hidden_dim=256),
                         full=dict(hidden_dim=2048)))
