"""What every chapter does the same way: its method's run (load-or-train), baselines, the results table."""
from __future__ import annotations

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
