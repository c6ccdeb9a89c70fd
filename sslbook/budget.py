"""How many epochs fit a time budget: a training step's FLOPs against a GPU's throughput.

The ``gpu`` profile trains each method for the epochs that fit ``BUDGET_MINUTES`` on a T4 (the GPU
Colab gives), whatever GPU it runs on, so that a run is the same run on every GPU and a faster GPU
only finishes sooner. The estimate is

    epochs = budget seconds x sustained FLOP/s / (FLOPs of one step per image x training images),

where the step's FLOPs are counted by ``torch.utils.flop_counter`` (forward and backward of the
method's own ``training_loss``: convolutions, matrix products and attention, which dominate) and
the sustained FLOP/s is a GPU's listed dense half-precision peak times ``SUSTAINED_FRACTION``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from .data import ImageData

BUDGET_MINUTES = 10.0
REFERENCE_GPU = "T4"

# Dense FP16/BF16 tensor-core peaks from NVIDIA's data sheets (TFLOP/s, no sparsity); the T4 has
# no bfloat16 and trains in float16 (``mixed_precision.choose_precision``).
LISTED_TFLOPS = {"T4": 65.0, "V100": 125.0, "A10": 125.0, "L4": 121.0, "A100": 312.0, "RTX A6000": 154.8,
                 "L40S": 362.0, "H100": 989.0, "H200": 989.0}
# The share of that peak a CIFAR ResNet-18 step sustains, taken from a published run: lightly's
# SimCLR, 200 epochs of CIFAR-10 at batch 512 in 87 minutes on an RTX A6000, at the 6.66 GFLOPs
# per image and step counted here for the CIFAR ResNet-18 (6.66e16 FLOPs in 5,220 s: 12.8 TFLOP/s,
# 8% of 154.8). An assumption until ``benchmarks.gpu_check`` measures it on the GPU at hand.
SUSTAINED_FRACTION = 0.08
COUNTED_BATCH = 32  # images in the counted step; the FLOPs per image hardly depend on the batch


def listed_tflops(gpu_name: str) -> float | None:
    """The listed peak of a GPU named like ``torch.cuda.get_device_name()``, or None if not listed."""
    matches = [key for key in LISTED_TFLOPS if key.lower() in gpu_name.lower()]
    return LISTED_TFLOPS[max(matches, key=len)] if matches else None


def step_flops_per_image(method: nn.Module, data: ImageData, device: torch.device | str = "cpu",
                         batch_size: int = COUNTED_BATCH) -> float:
    """FLOPs of one training step (``training_loss`` and its backward pass) per training image.

    Counted on a copy of ``method`` (its weights, memory banks and statistics stay as they are),
    on the first ``batch_size`` training images, in float32.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from .train import Batch

    if len(data) < batch_size:
        raise ValueError(f"counting a step needs {batch_size} training images, got {len(data)}; "
                         "pass a smaller batch_size or more data")
    counted = copy.deepcopy(method).to(device).train()
    batch = Batch(data.images[:batch_size].to(device), data.labels[:batch_size].to(device),
                  torch.arange(batch_size, device=device), torch.Generator(device=device).manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        output = counted.training_loss(batch)
        loss = output if isinstance(output, torch.Tensor) else output["loss"]
        loss.backward()
    return counter.get_total_flops() / batch_size


@dataclass(frozen=True)
class EpochBudget:
    """The epochs that fit the budget on the reference GPU, and what the estimate rests on."""

    epochs: int
    flops_per_image: float  # of one step, forward and backward
    training_images: int
    minutes_on_reference: float  # the estimated training time of ``epochs`` on the reference GPU
    gpu_name: str | None = None  # the GPU at hand, if any
    minutes_here: float | None = None  # the estimate on it, if its peak is listed

    def describe(self, method_name: str) -> str:
        here = ""
        if self.gpu_name is not None:
            here = (f"; on this {self.gpu_name}, about {self.minutes_here:.1f} minutes" if self.minutes_here is not None
                    else f"; this {self.gpu_name} is not in sslbook.budget.LISTED_TFLOPS, so no estimate for it")
        return (f"{method_name}: {self.epochs} epoch{'s' * (self.epochs != 1)} of {self.training_images:,} images, sized to "
                f"{BUDGET_MINUTES:g} minutes on a {REFERENCE_GPU}: {self.flops_per_image / 1e9:.2f} GFLOPs per "
                f"image and step (counted), at {SUSTAINED_FRACTION:.0%} of the {REFERENCE_GPU}'s listed "
                f"{LISTED_TFLOPS[REFERENCE_GPU]:g} TFLOP/s (assumed), about {self.minutes_on_reference:.1f} "
                f"minutes{here}. SSLBOOK_PROFILE=full runs the paper-scale recipe.")


def minutes_for(epochs: int, flops_per_image: float, training_images: int, tflops: float) -> float:
    return epochs * training_images * flops_per_image / (tflops * 1e12 * SUSTAINED_FRACTION) / 60


def epochs_that_fit(flops_per_image: float, training_images: int, most: int, gpu_name: str | None = None,
                    budget_minutes: float | None = None) -> EpochBudget:
    """The whole epochs that fit ``budget_minutes`` (default ``BUDGET_MINUTES``) on the reference GPU:
    at least 1, at most ``most``."""
    budget_minutes = BUDGET_MINUTES if budget_minutes is None else budget_minutes
    if not flops_per_image > 0 or training_images < 1:
        raise ValueError(f"need positive FLOPs per image and training images, got {flops_per_image} and "
                         f"{training_images}")
    per_epoch = minutes_for(1, flops_per_image, training_images, LISTED_TFLOPS[REFERENCE_GPU])
    epochs = max(1, min(most, math.floor(budget_minutes / per_epoch)))
    tflops_here = listed_tflops(gpu_name) if gpu_name is not None else None
    return EpochBudget(epochs, flops_per_image, training_images, epochs * per_epoch, gpu_name,
                       None if tflops_here is None else minutes_for(epochs, flops_per_image, training_images,
                                                                     tflops_here))
