"""Results files: one JSON per method and profile, read by the comparison chapters.

Quick-profile results are written when a chapter runs (``results/quick/``, not
committed); full-profile results come from GPU runs and are committed in
``results/full/`` with the hardware and recipe they came from. Recorded experiments, too long for a
chapter to repeat at every run, are written by the function that measured them into
``results/recorded/`` and committed with how they were made.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from .paths import RESULTS_ENV, results_base, write_atomically  # noqa: F401 (RESULTS_ENV: for the tests)


def results_dir(profile: str) -> Path:
    return results_base() / profile


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def save_result(method: str, profile: str, metrics: dict, **details) -> Path:
    """Write ``results/<profile>/<method>.json`` with the metrics and where they came from."""
    path = results_dir(profile) / f"{method}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"method": method, "profile": profile, **metrics, "hardware": hardware(),
              "torch": torch.__version__, **details}
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    return path


def load_results(profile: str) -> dict[str, dict]:
    """Every saved result of a profile, by method name."""
    folder = results_dir(profile)
    if not folder.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def reference_result(method: str) -> dict | None:
    """The committed full-profile (GPU) result of a method, or None if it has not been run."""
    return load_results("full").get(method)


def save_recorded(name: str, record: dict) -> Path:
    """Write the recorded experiment ``results/recorded/<name>.json`` with the hardware and torch version."""
    path = results_dir("recorded") / f"{name}.json"
    text = json.dumps({**record, "hardware": hardware(), "torch": torch.__version__}, indent=2, sort_keys=True)
    write_atomically(path, lambda temporary: temporary.write_text(text + "\n"))
    return path


def recorded(name: str) -> dict | None:
    """The recorded experiment ``name``, or None when ``results/recorded/`` has none."""
    path = results_dir("recorded") / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None
