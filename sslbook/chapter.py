"""What every chapter does the same way: its method's run (load-or-train), baselines, the results table."""
from __future__ import annotations

import dataclasses
import hashlib
import json

from torch import nn

from .augment import ViewRecipe
from .data import ImageData
from .evaluate import PixelEncoder, evaluate, random_init_like
from .train import TrainConfig
from .runs import checkpoints_dir, describe_run, load_or_train, method_run  # noqa: F401 (the chapters' API)

METRIC_NAMES = {"knn": "kNN acc. (%)", "linear": "linear probe (%)", "alignment": "L_align",
                "uniformity": "L_uniform"}


def baselines(encoder: nn.Module, train_data: ImageData, test_data: ImageData,
              recipe: ViewRecipe | None = None) -> dict[str, dict[str, float]]:
    """The same metrics for a random-init copy of ``encoder`` and for raw pixels.

    Each is computed once per architecture, data and recipe and kept beside the checkpoints, since
    every chapter of the same encoder would compute the same numbers again.
    """
    random_encoder = random_init_like(encoder).to(_device(encoder))
    return {"random init": evaluate_once(random_encoder, train_data, test_data, recipe),
            "raw pixels": evaluate_once(PixelEncoder(), train_data, test_data, recipe)}


def evaluate_once(encoder: nn.Module, train_data: ImageData, test_data: ImageData,
                  recipe: ViewRecipe | None = None) -> dict[str, float]:
    """``evaluate.evaluate``, computed once per encoder (architecture and weights), data and recipe.

    The result is kept beside the checkpoints, so the benchmark chapter reads what a chapter measured.
    """
    key = {name: describe_run(encoder, TrainConfig(), data) for name, data in
           (("train", train_data), ("test", test_data))} | {"recipe": repr(recipe)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = checkpoints_dir() / f"scores-{type(encoder).__name__}-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())
    scores = evaluate(encoder, train_data, test_data, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(scores))
    temporary.replace(path)
    return scores


def simclr_like(run):
    """SimCLR's run with ``run``'s training settings (epochs, batch size, learning rate, seed, ...).

    The fair reference for a variant of SimCLR's loss: the variants of the book that train the same
    settings build the same run (one fingerprint), trained once and loaded by the others.
    """
    return method_run("simclr", run.profile, run.data, **dataclasses.asdict(run.config))


def simclr_at_same_budget(run, test_data: ImageData, recipe: ViewRecipe | None = None) -> dict[str, float]:
    """The scores of ``simclr_like(run)``, loaded or trained, on ``run``'s training data and ``test_data``."""
    simclr = simclr_like(run)
    simclr.load_or_train()
    return evaluate_once(simclr.encoder, run.data, test_data, recipe)


def knn_comparison(name: str, scores: dict[str, float], reference_name: str, reference: dict[str, float],
                   budget: str, margin: float = 2.0):
    """A Markdown sentence stating the measured kNN difference of two runs of one budget.

    A difference below ``margin`` points is too small to call a winner from one seed each, so the
    sentence gives it no direction.
    """
    from IPython.display import Markdown

    difference = scores["knn"] - reference["knn"]
    if abs(difference) < margin:
        verdict = f"less than {margin:g} points, too little to call a winner from one run (one seed) each"
    else:
        verdict = f"{name if difference > 0 else reference_name} is ahead by more than {margin:g} points"
    return Markdown(f"With the same budget ({budget}), {name} reaches {scores['knn']:.1f}% kNN accuracy and "
                    f"{reference_name} {reference['knn']:.1f}%, a difference of {difference:+.1f} points: {verdict}.")


def _device(module: nn.Module):
    return next(module.parameters()).device


def results_table(rows: dict[str, dict[str, float]]):
    """Show a Markdown table of metrics, one row per encoder."""
    from IPython.display import Markdown

    columns = [key for key in METRIC_NAMES if any(key in row for row in rows.values())]
    lines = ["| encoder | " + " | ".join(METRIC_NAMES[key] for key in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[key]:.2f}" if key in row else "–" for key in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))
