"""Image Rotation (Gidaris et al. 2018): rotate x by one of [0, 90, 180, 270] degrees, classify the angle.

Gidaris, Singh and Komodakis (2018) write the rotations as g(X | y), y = 1..K
(K = 4 multiples of 90 degrees), and train a ConvNet F(.) to output the
probability F^y(X^y* | theta) of each rotation y* for the rotated image
X^y* = g(X | y*). Their objective averages, over all N images and all K
rotations of each image,

    loss(X_i, theta) = -(1 / K) * sum_y log F^y(g(X_i | y) | theta),

which is a K-way cross-entropy on the rotated copies. Here F(.) is the encoder
followed by a linear head.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_float_images, check_positive_int, unit_float
from ..runs import MethodEntry, per_profile


def _check_quarter_turns(quarter_turns: Sequence[int]) -> None:
    turns = list(quarter_turns)
    if len(turns) < 2 or len(set(turns)) != len(turns) or not all(turn in (0, 1, 2, 3) for turn in turns):
        raise ValueError(
            f"quarter_turns must list at least two distinct rotations out of 0, 1, 2, 3 (multiples of 90 degrees), "
            f"got {turns}; pass (0, 1, 2, 3) for the paper's four rotations or e.g. (0, 2) for two"
        )


def rotation_task(images: torch.Tensor,
                  quarter_turns: Sequence[int] = (0, 1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotated copies g(X | y) of every image and their labels y (Gidaris et al., 2018).

    Every image X appears once per rotation in ``quarter_turns`` (counter-clockwise
    multiples of 90 degrees, ``torch.rot90(x, k, dims=(-2, -1))``); the label of
    a copy is the position of its rotation in ``quarter_turns``, so that the task is a
    K-way classification with K = len(quarter_turns).

    Args:
        images: X, float (N, C, S, S) in [0, 1].
        quarter_turns: the K rotations y, as multiples of 90 degrees (the paper: all four).

    Returns:
        rotated (K*N, C, S, S) and labels (K*N,) long, rotation-major: rotated[k*N + n] is
        images[n] turned by quarter_turns[k] * 90 degrees, labels[k*N + n] = k.
    """
    _check_quarter_turns(quarter_turns)
    check_float_images(images)
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(
            f"rotation_task needs square images so that all rotations share one shape, got {height}x{width}; "
            "crop or resize the images to a square first"
        )
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in quarter_turns])
    labels = torch.arange(len(quarter_turns), device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


class RotationPrediction(nn.Module):
    """F(. | theta): the encoder plus a linear K-way head on its pooled features, trained on every rotation.

    Args:
        encoder: the backbone whose pooled features feed the head.
        quarter_turns: the K rotations y as multiples of 90 degrees (default: all four, as in the paper).
    """

    def __init__(self, encoder: nn.Module, quarter_turns: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        _check_quarter_turns(quarter_turns)
        self.encoder = encoder
        self.quarter_turns = tuple(quarter_turns)
        self.head = nn.Linear(encoder.feature_dim, len(self.quarter_turns))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Rotation logits (N, K) of float images in [0, 1]."""
        return self.head(self.encoder(images))

    def training_loss(self, batch) -> dict:
        rotated, labels = rotation_task(unit_float(batch.images), self.quarter_turns)
        logits = self(rotated)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy.item()}


@torch.no_grad()
def stage_features(encoder: nn.Module, images: torch.Tensor, grid: int = 2,
                   batch_size: int = 512) -> list[torch.Tensor]:
    """Features of every block of an encoder, for probing block by block as Gidaris et al. (2018) do.

    One pass of ``encoder.forward_stages`` per batch (in eval mode); each block's map
    is average-pooled to ``grid`` x ``grid`` cells and flattened, so block b gives
    channels_b * grid^2 features per image.

    Args:
        encoder: a backbone with ``forward_stages`` (sslbook.networks).
        images: uint8, or float in [0, 1], (N, 3, H, W); moved batch by batch to the encoder's device.
        grid: cells per side of the pooled map (1: global average pooling).
        batch_size: images per forward pass.

    Returns:
        one float32 CPU tensor (N, channels_b * grid^2) per block, first block first.
    """
    check_positive_int(grid, "grid", "2 (1 for global pooling)")
    if not hasattr(encoder, "forward_stages"):
        raise ValueError(f"{type(encoder).__name__} has no forward_stages(x); pass a backbone from sslbook.networks")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    per_stage: list[list[torch.Tensor]] = []
    for start in range(0, len(images), batch_size):
        batch = unit_float(images[start:start + batch_size].to(device))
        maps = encoder.forward_stages(batch)
        if not per_stage:
            per_stage = [[] for _ in maps]
        for chunks, feature_map in zip(per_stage, maps):
            chunks.append(F.adaptive_avg_pool2d(feature_map, grid).flatten(1).float().cpu())
    encoder.train(was_training)
    return [torch.cat(chunks) for chunks in per_stage]


def build(profile, train_data, *, quarter_turns: tuple[int, ...]) -> RotationPrediction:
    return RotationPrediction(profile.encoder(), quarter_turns)


ENTRY = MethodEntry(
    name="rotation", title="Rotation", chapter="book/pretext/rotation.ipynb", order=6, build=build,
    summary="predicting which of four rotations was applied (Gidaris et al. 2018)",
    training=per_profile(quick=dict(epochs=4)), settings=per_profile(dict(quarter_turns=(0, 1, 2, 3))))
