"""What every chapter does the same way: load-or-train, baselines, the results table."""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .augment import ViewRecipe
from .data import ImageData
from .evaluate import PixelEncoder, evaluate, random_init_like
from .profiles import Profile
from .train import History, TrainConfig, train

CHECKPOINTS_ENV = "SSLBOOK_CHECKPOINTS"
METRIC_NAMES = {"knn": "kNN acc. (%)", "linear": "linear probe (%)", "alignment": "L_align",
                "uniformity": "L_uniform"}


def checkpoint_path(name: str, profile: Profile) -> Path:
    """``checkpoints/<name>-<profile>.pt`` in the repository, or in ``$SSLBOOK_CHECKPOINTS`` when set."""
    folder = os.environ.get(CHECKPOINTS_ENV) or Path(__file__).resolve().parent.parent / "checkpoints"
    return Path(folder) / f"{name}-{profile.name}.pt"


def load_or_train(method: nn.Module, data: ImageData, config: TrainConfig, name: str, profile: Profile,
                  **options) -> History:
    """Train ``method``, or load it when a finished checkpoint is saved (delete the file to retrain)."""
    path = checkpoint_path(name, profile)
    if path.exists():
        print(f"Found {path}: loading (or resuming) instead of training from scratch; delete it to retrain.")
    return train(method, data, config, device=profile.device, checkpoint=path, description=name, **options)


def baselines(encoder: nn.Module, train_data: ImageData, test_data: ImageData,
              recipe: ViewRecipe | None = None) -> dict[str, dict[str, float]]:
    """The same metrics for a random-init copy of ``encoder`` and for raw pixels."""
    return {
        "random init": evaluate(random_init_like(encoder).to(_device(encoder)), train_data, test_data, recipe),
        "raw pixels": evaluate(PixelEncoder(), train_data, test_data, recipe),
    }


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
