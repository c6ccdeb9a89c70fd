"""Input checks shared across the package: each names the problem and the fix, nothing is clamped.

Also the one conversion every pretext task starts from: uint8 images to floats in [0, 1].
"""
from __future__ import annotations

import numbers

import torch


def check_positive(value: float, name: str, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}; pass a positive {name} such as {example}")


def check_non_negative(value: float, name: str, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}; pass a non-negative {name} such as {example}")


def check_positive_int(value: int, name: str, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}; pass e.g. {name}={example}")


def check_unit_interval(value: float, name: str, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}; pass a value such as {example}")


def check_float_images(images: torch.Tensor, name: str = "images") -> None:
    """Float images in [0, 1] of shape (N, C, H, W), as the pretext tasks and autoencoders take them."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a tensor of shape (N, C, H, W), got {shape}; "
                         "add a batch dimension with images.unsqueeze(0) for a single image")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float images in [0, 1], got dtype {images.dtype}; "
                         "convert uint8 images with sslbook.checks.unit_float(images)")


def unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1]; float images are returned as they are."""
    return images.float() / 255 if images.dtype == torch.uint8 else images


def check_tau_plus(tau_plus: float) -> None:
    if not 0 <= tau_plus < 1:
        raise ValueError(
            f"tau_plus (the class prior eta^+) must lie in [0, 1), got {tau_plus}; "
            "pass a probability such as 0.1 (0 recovers the biased loss)"
        )


def check_ndim(x: torch.Tensor, name: str, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D tensor of shape {layout}, got shape {tuple(x.shape)}; "
            f"reshape it to {layout}"
        )


def check_pair(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    check_ndim(a, name_a, 2, "(N, D)")
    check_ndim(b, name_b, 2, "(N, D)")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; pass one row per sample in both, paired by row index"
        )


def check_batch_size(n: int, minimum: int, reason: str) -> None:
    if n < minimum:
        raise ValueError(f"batch size N must be >= {minimum} {reason}, got N={n}; use a larger batch")

