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


LIBRARIES = ("sslbook", "torch", "torchvision", "numpy", "sklearn")  # an answer imported from these is not one's own


def _names_used(code) -> set[str]:
    """Every global and attribute name a code object and the code nested in it refer to."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names |= _names_used(constant)
    return names


def check_own_implementation(function, what: str, library_names: tuple[str, ...] = ()) -> None:
    """Check that ``function`` is the student's own: defined in the notebook, and calling none of
    ``library_names`` (the library functions its exercise's check compares against), neither by name
    nor through a global that holds one. A graded copy's hidden test (``classroom --format otter``)."""
    if not callable(function):
        raise ExerciseError(f"{what}: no answer yet; define the function in the exercise cell and run it")
    module = getattr(function, "__module__", None) or ""
    if not hasattr(function, "__code__") or module.split(".")[0] in LIBRARIES:
        raise ExerciseError(f"{what}: {getattr(function, '__qualname__', function)!r} comes from "
                            f"{module or 'a compiled library'}, not from this notebook; write the function yourself")
    used = _names_used(function.__code__)
    through_globals = {getattr(function.__globals__.get(name), "__name__", None) for name in used}
    called = sorted(set(library_names) & (used | through_globals))
    if called:
        raise ExerciseError(f"{what}: the answer calls {', '.join(called)} from sslbook, the function the check "
                            "compares it with; compute it yourself")
    print(f"correct: {what} is your own implementation")


def check_variant(variant, run, what: str, **changes) -> None:
    """Check a retrain-a-variant exercise: ``variant`` is ``chapter.train_variant``'s result for the
    chapter's ``run`` with exactly ``changes``, trained to the end, and its scores are those of its
    own encoder (read from the run, not typed in)."""
    import dataclasses

    from .chapter import Variant, evaluate_once

    if variant is None or variant is Ellipsis:
        raise ExerciseError(f"{what}: no answer yet; train the variant with chapter.train_variant and run the cell")
    if not isinstance(variant, Variant):
        raise ExerciseError(f"{what}: not right yet. Expected what chapter.train_variant returns, got "
                            f"{type(variant).__name__}")
    settings = {**dataclasses.asdict(variant.run.config), **variant.run.settings}
    wanted = {**dataclasses.asdict(run.config), **run.settings, **changes}
    wrong = {key: settings.get(key) for key in wanted if key != "compile" and settings.get(key) != wanted[key]}
    if variant.run.name != run.name or wrong:
        raise ExerciseError(f"{what}: not right yet. The variant should be {run.name} with "
                            f"{', '.join(f'{key}={value!r}' for key, value in changes.items())} and every other "
                            f"setting as in the chapter's run; it differs in "
                            f"{', '.join(f'{key}={value!r}' for key, value in wrong.items()) or 'the method'}")
    steps = variant.run.config.total_steps(len(variant.run.data))
    if len(variant.history.steps) < steps:
        raise ExerciseError(f"{what}: not right yet. The variant trained {len(variant.history.steps)} of its "
                            f"{steps} steps; train it to the end")
    for encoder, scores, whose in ((variant.run.encoder, variant.scores, "the variant"),
                                   (run.encoder, variant.baseline_scores, "the chapter's run")):
        if evaluate_once(encoder, run.data, variant.test_data, variant.recipe) != scores:
            raise ExerciseError(f"{what}: not right yet. The scores of {whose} are not those its encoder "
                                "gets; keep what chapter.train_variant measured")
    print(f"correct: {what}")
