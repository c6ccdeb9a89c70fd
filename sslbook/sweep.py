"""A method's chapter run repeated over class-balanced samples and seeds: the spread of its results.

    python -m sslbook sweep [METHOD ...] [--samples 3]

Sample ``s`` draws the profile's training images with ``balanced_subset(seed=s)`` and trains with
seed ``s`` (sample 0 is the chapter's own run); the test images are the profile's. Every run is
found by its fingerprint, so a run already trained is loaded. A method's runs and their summary go
to ``results/sweep-<profile>/<method>.json``, which the repository commits for the quick profile:
the chapters' reference sections show it, and their assertion margins are read against it.
"""
from __future__ import annotations

import json
import statistics

from .augment import simclr_cifar
from .chapter import baselines, evaluate_once
from .paths import write_atomically
from .profiles import Profile
from .results import hardware, results_dir
from .runs import method_run

SUMMARISED = ("knn", "linear", "knn_gain", "linear_gain")


def sweep_folder(profile_name: str):
    return results_dir(f"sweep-{profile_name}")


def sweep_method(name: str, profile: Profile, samples: int = 3, root=None) -> dict:
    """Train (or load) ``name``'s chapter run on ``samples`` samples and seeds; write and return the record."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    recipe, rows = simclr_cifar(), []
    for sample in range(samples):
        train_data, test_data = profile.load_data(root, seed=sample)
        run = method_run(name, profile, train_data, seed=sample)
        history = run.load_or_train(progress=False)
        scores = evaluate_once(run.encoder, train_data, test_data, recipe)
        floor = baselines(run.encoder, train_data, test_data, recipe)["random init"]
        rows.append({"sample": sample, "seed": sample, **scores, "random_init_knn": floor["knn"],
                     "random_init_linear": floor["linear"], "knn_gain": scores["knn"] - floor["knn"],
                     "linear_gain": scores["linear"] - floor["linear"], "seconds": history.seconds,
                     "fingerprint": run.fingerprint})
    summary = {key: {"mean": statistics.fmean(row[key] for row in rows), "min": min(row[key] for row in rows),
                     "max": max(row[key] for row in rows)} for key in SUMMARISED}
    record = {"method": name, "profile": profile.name, "samples": samples, "runs": rows, "summary": summary,
              "training images": len(train_data), "test images": len(test_data), "hardware": hardware(),
              "made with": f"python -m sslbook sweep {name} --samples {samples} --profile {profile.name}"}
    path = sweep_folder(profile.name) / f"{name}.json"
    write_atomically(path, lambda temporary: temporary.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n"))
    return record


def load_sweep(name: str, profile_name: str) -> dict | None:
    """The recorded sweep of method ``name`` in a profile, or None when none is recorded."""
    path = sweep_folder(profile_name) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


LABEL_EFFICIENCY = "label-efficiency-sweep-{profile}"  # the recorded experiment's name (results/recorded/)


def sweep_label_efficiency(profile: Profile, method: str = "simclr", samples: int = 3, root=None) -> dict:
    """The evaluation chapter's label-efficiency curves (``chapter.label_efficiency``) for ``method``'s
    chapter run on ``samples`` samples and seeds, recorded in ``results/recorded/``: the spread its
    claim's margin is chosen from."""
    from .chapter import label_efficiency
    from .results import save_recorded

    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    rows = []
    for sample in range(samples):
        train_data, test_data = profile.load_data(root, seed=sample)
        run = method_run(method, profile, train_data, seed=sample)
        run.load_or_train(progress=False)
        curves = label_efficiency(f"{method} (frozen)", run.encoder, profile, train_data, test_data)
        rows.append({"sample": sample, "seed": sample, "fingerprint": run.fingerprint,
                     "curves": {name: {str(n): values for n, values in curve.items()} for name, curve in curves.items()}})
    record = {"method": method, "profile": profile.name, "samples": rows, "training images": len(train_data),
              "made with": f"sslbook.sweep.sweep_label_efficiency(choose_profile({profile.name!r}), {method!r}, "
                           f"samples={samples})"}
    save_recorded(LABEL_EFFICIENCY.format(profile=profile.name), record)
    return record
