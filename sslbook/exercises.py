"""Automatic checks for the chapters' exercises: each failure says what is wrong."""
from __future__ import annotations

import torch


class ExerciseError(AssertionError):
    """An exercise's answer is not right yet; the message says how."""


def check_close(answer, expected, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Check that ``answer`` matches ``expected`` (numbers or tensors) and say how it differs if not."""
    if answer is None or answer is Ellipsis:
        raise ExerciseError(f"{what}: no answer yet; fill in the exercise cell above and run it again")
    answer_tensor = torch.as_tensor(answer, dtype=torch.float64)
    expected_tensor = torch.as_tensor(expected, dtype=torch.float64)
    if answer_tensor.shape != expected_tensor.shape:
        raise ExerciseError(
            f"{what}: expected shape {tuple(expected_tensor.shape)}, got {tuple(answer_tensor.shape)}"
        )
    if not torch.isfinite(answer_tensor).all():
        raise ExerciseError(f"{what}: the answer holds NaN or infinite values")
    if not torch.allclose(answer_tensor, expected_tensor, rtol=rtol, atol=atol):
        difference = (answer_tensor - expected_tensor).abs().max().item()
        hint = f"expected {expected_tensor.item():.6g}, got {answer_tensor.item():.6g}" \
            if answer_tensor.numel() == 1 else f"largest difference {difference:.3g}"
        raise ExerciseError(f"{what}: not right yet ({hint})")
    print(f"correct: {what}")


def check_true(condition: bool, what: str, hint: str) -> None:
    """Check a yes/no property of an answer; ``hint`` says what to look at when it fails."""
    if not condition:
        raise ExerciseError(f"{what}: not right yet. {hint}")
    print(f"correct: {what}")
