"""One step of the shared training loop, as each method's tests take it."""
from __future__ import annotations

import math

import torch
from torch import nn

from sslbook.data import ImageData
from sslbook.train import History, TrainConfig, train


def random_uint8_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def train_one_step(method: nn.Module, images: torch.Tensor, *, watched: nn.Module | None = None,
                   batch_size: int | None = None, **config) -> tuple[History, list[bool]]:
    """Train ``method`` for one step on ``batch_size`` of ``images`` (default: all) on the CPU.

    Checks that the step's loss is finite and returns the history and, for each parameter of
    ``watched`` (default: the method), whether the step changed it. ``config``: TrainConfig fields.
    """
    watched = method if watched is None else watched
    before = [p.detach().clone() for p in watched.parameters()]
    data = ImageData(images, torch.arange(len(images)) % 2, ["a", "b"])
    config = TrainConfig(**{"epochs": 1, "batch_size": batch_size or len(images), "max_steps": 1, **config})
    history = train(method, data, config, device="cpu", progress=False)
    assert len(history.steps) == 1 and math.isfinite(history.steps[0]["loss"])
    return history, [not torch.equal(a, b) for a, b in zip(before, watched.parameters())]
