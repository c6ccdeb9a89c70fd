"""One prepared check of a GPU machine (an H100 or H200) in at most 9 minutes, written to one JSON file.

In order: the hardware (device name, compute capability, torch and CUDA versions); the data it
found (where, which layout, how many images); the pipeline benchmark (``benchmarks.pipeline_benchmark``:
on-device pipeline against a DataLoader); SimCLR (Chen et al. 2020) as a chapter trains it on a
GPU (the ``gpu`` profile, its epochs sized to ten minutes on a T4), with the FLOP/s it sustained
against the estimate's assumption (``sslbook.budget``); then SimCLR in the ``full`` profile for as
many steps as the time left allows. Each is evaluated by ``sslbook.evaluate.evaluate`` (kNN,
linear probe, alignment and uniformity).

The time budget is kept in steps: after a warm-up, a calibration run measures the seconds per
step, the calibrated encoder's evaluation measures what evaluating costs; the gpu-profile run
takes at most half the time left, the full-profile run the rest (each less its evaluation, with a
margin). A run's learning-rate schedule spans the steps it trains; the full recipe's warm-up is
shortened to a tenth of them where it is longer. Everything printed goes into the JSON record
too (``printed``).

    SSLBOOK_DATA=/path/to/cifar10 python -m benchmarks.gpu_check           # results/gpu-check-<device>.json
    python -m benchmarks.gpu_check --out $OUT/gpu-check.json --minutes 8
    python -m benchmarks.gpu_check --cpu-smoke --out /tmp/gpu-check.json   # the same code path, tiny, on a CPU

``--cpu-smoke`` runs every step on tiny sizes (quick profile, 50 training and 20 test images per
class, a few steps; 15 to 40 s on two CPU cores), so that the tests run the script the GPU machine runs.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import time
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from benchmarks import pipeline_benchmark
from sslbook.augment import simclr_cifar
from sslbook.budget import REFERENCE_GPU, SUSTAINED_FRACTION, listed_tflops
from sslbook.data import balanced_subset, data_root, is_image_folder, load_dataset
from sslbook.evaluate import evaluate
from sslbook.paths import results_base
from sslbook.profiles import choose_profile
from sslbook.results import hardware
from sslbook.runs import method_run
from sslbook.train import train

EVALUATION_MARGIN = 1.5  # the calibrated evaluation's time, times this, is kept free for the final one
FINISHING_SECONDS = 10  # writing the record, the interpreter's exit


@dataclass(frozen=True)
class Sizes:
    """How big each part of the check is: the GPU machine's sizes, or the CPU smoke test's."""

    profile: str  # the long run's (full, for as long as fits)
    sized_profile: str  # the run sized to the budget (gpu)
    minutes: float
    train_per_class: int | None  # None: every image of the data folder
    test_per_class: int | None
    batch_size: int | None  # None: the profile's
    calibration_steps: int  # once to warm up, once timed
    max_steps: int | None  # a cap on the budgeted steps (None: the budget alone)
    pipeline_arguments: tuple[str, ...]  # for benchmarks.pipeline_benchmark.main


GPU = Sizes("full", "gpu", 9.0, None, None, None, calibration_steps=20, max_steps=None, pipeline_arguments=())
CPU_SMOKE = Sizes("quick", "quick-sized", 2.0, 50, 20, 64, calibration_steps=2, max_steps=4,
                  pipeline_arguments=("--steps", "2", "--warmup", "1", "--images", "64", "--batch-size", "16",
                                      "--workers", "0"))


class Tee(io.TextIOBase):
    """Standard output that also keeps a copy of everything written to it."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        self.stream.flush()


def device_slug(device: torch.device) -> str:
    """``nvidia-h200`` for an NVIDIA H200, ``cpu`` without a GPU: the name in the record's file name."""
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def hardware_record(device: torch.device) -> dict:
    record = {"summary": hardware(), "torch": torch.__version__, "cuda": torch.version.cuda,
              "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        record |= {"device_name": torch.cuda.get_device_name(device),
                   "capability": list(torch.cuda.get_device_capability(device)),
                   "memory_gib": round(properties.total_memory / 2**30, 1)}
    return record


def load_data(sizes: Sizes, data_set: str):
    """The training and test sets, as class-balanced subsets where ``sizes`` asks, and what they are."""
    train_data, test_data = load_dataset(data_set, "train"), load_dataset(data_set, "test")
    root = data_root()
    description = {"root": str(root), "layout": "ImageFolder (train/<class>/*, test/<class>/*)"
                   if is_image_folder(root) else f"torchvision's {data_set} archive",
                   "classes": train_data.classes, "train_images_found": len(train_data),
                   "test_images_found": len(test_data)}
    if sizes.train_per_class is not None:
        train_data = balanced_subset(train_data, sizes.train_per_class)
    if sizes.test_per_class is not None:
        test_data = balanced_subset(test_data, sizes.test_per_class)
    description |= {"train_images": len(train_data), "test_images": len(test_data)}
    return train_data, test_data, description


def timed_evaluation(encoder, train_data, test_data) -> tuple[dict, float]:
    started = time.perf_counter()
    scores = evaluate(encoder, train_data, test_data, simclr_cifar())
    return scores, time.perf_counter() - started


def calibrate(sizes: Sizes, profile, train_data, test_data) -> tuple[float, float, dict]:
    """Seconds per SimCLR step (a warm-up run, then a timed one), seconds per evaluation, and the scores."""
    calibration = method_run("simclr", profile, train_data, max_steps=sizes.calibration_steps, **batch_of(sizes))
    train(calibration.method, train_data, calibration.config, device=profile.device, progress=False)  # warm-up
    timed = train(calibration.method, train_data, calibration.config, device=profile.device, progress=False)
    seconds_per_step = timed.seconds / len(timed.steps)
    calibration_scores, evaluation_seconds = timed_evaluation(calibration.encoder, train_data, test_data)
    print(f"calibration: {seconds_per_step:.4f} s per step of batch {calibration.config.batch_size}; "
          f"evaluation {evaluation_seconds:.1f} s; kNN after {2 * sizes.calibration_steps} steps "
          f"{calibration_scores['knn']:.2f}%")
    return seconds_per_step, evaluation_seconds, calibration_scores


def batch_of(sizes: Sizes) -> dict:
    return {"batch_size": sizes.batch_size} if sizes.batch_size is not None else {}


def train_and_evaluate(run, train_data, test_data, max_steps: int, budgeted_seconds: float) -> dict:
    """Train ``run`` for at most ``max_steps`` steps, evaluate it, and say how it went."""
    profile = run.profile
    steps_per_epoch = len(train_data) // run.config.batch_size
    planned = min(max_steps, run.config.epochs * steps_per_epoch)
    run.config = replace(run.config, max_steps=planned)
    print(f"training SimCLR, {profile.name} profile ({profile.backbone}): {planned} steps "
          f"({planned / steps_per_epoch:.1f} of its {run.config.epochs} epochs), budgeted {budgeted_seconds:.0f} s")
    history = train(run.method, train_data, run.config, device=profile.device, progress=False)
    scores, evaluation_seconds = timed_evaluation(run.encoder, train_data, test_data)
    print(f"SimCLR, {profile.name} profile, after {len(history.steps)} steps ({history.seconds:.1f} s, "
          f"{history.images_per_second:.0f} images/s): kNN {scores['knn']:.2f}%, linear {scores['linear']:.2f}%, "
          f"loss {history.losses()[-1]:.4f}; evaluation {evaluation_seconds:.1f} s")
    return {"profile": profile.name, "backbone": profile.backbone, "batch_size": run.config.batch_size,
            "epochs_of_recipe": run.config.epochs, "max_steps": planned, "budgeted_training_seconds": budgeted_seconds,
            "warmup_epochs": run.config.warmup_epochs, "steps": len(history.steps),
            "epochs": len(history.steps) / steps_per_epoch, "train_seconds": history.seconds,
            "images_per_second": history.images_per_second, "final_loss": history.losses()[-1],
            "evaluation_seconds": evaluation_seconds, **scores}


def sized_run_record(run, trained: dict) -> dict:
    """The sized profile's estimate beside what the run measured: the FLOP/s it sustained."""
    budget = run.budget
    sustained = budget.flops_per_image * trained["images_per_second"]
    record = {"estimate": asdict(budget), "estimate_described": budget.describe("simclr"),
              "sustained_tflops": sustained / 1e12}
    listed = listed_tflops(budget.gpu_name) if budget.gpu_name else None
    if listed is not None:
        record["sustained_fraction_of_listed"] = sustained / (listed * 1e12)
        print(f"sustained {sustained / 1e12:.1f} TFLOP/s: {record['sustained_fraction_of_listed']:.1%} of this "
              f"GPU's listed {listed:g} (the estimate assumes {SUSTAINED_FRACTION:.0%} on a {REFERENCE_GPU})")
    return record


def train_simclr(sizes: Sizes, train_data, test_data, deadline: float) -> dict:
    """The sized (gpu) profile's SimCLR run, then the full profile's for the time left, each evaluated.

    Both train the same network at the same batch, so one calibration times the steps of both.
    """
    sized_profile, full_profile = profile_of(sizes.sized_profile), profile_of(sizes.profile)
    seconds_per_step, evaluation_seconds, calibration_scores = calibrate(sizes, full_profile, train_data, test_data)
    records = {"seconds_per_step": seconds_per_step, "calibration_scores": calibration_scores}

    def steps_in(seconds: float) -> int:
        steps = math.floor(seconds / seconds_per_step)
        if steps < 1:
            raise ValueError(f"{seconds:.0f} s are left for training, less than one step of "
                             f"{seconds_per_step:.2f} s; give the check more --minutes")
        return min(steps, sizes.max_steps or steps)

    reserved = EVALUATION_MARGIN * evaluation_seconds  # for each run's evaluation
    half = (deadline - time.perf_counter() - 2 * reserved) / 2  # the sized run takes at most half the time
    sized = method_run("simclr", sized_profile, train_data, **batch_of(sizes))
    trained = train_and_evaluate(sized, train_data, test_data, steps_in(half), half)
    records["sized"] = trained | sized_run_record(sized, trained)

    left = deadline - time.perf_counter() - reserved
    full, full_steps = method_run("simclr", full_profile, train_data, **batch_of(sizes)), steps_in(left)
    steps_per_epoch = len(train_data) // full.config.batch_size
    full.config = replace(full.config, warmup_epochs=min(full.config.warmup_epochs,
                                                         0.1 * full_steps / steps_per_epoch))
    records["full"] = train_and_evaluate(full, train_data, test_data, full_steps, left)
    return records


def profile_of(name: str):
    """A profile by name; ``quick-sized`` is the quick profile with its epochs sized (the smoke run's)."""
    if name == "quick-sized":
        quick = choose_profile("quick", verbose=False)
        return replace(quick, name="quick-sized", recipe="quick", sized=True)
    return choose_profile(name, verbose=False)


def check(sizes: Sizes, minutes: float, started: float) -> dict:
    deadline = started + 60 * minutes - FINISHING_SECONDS
    profile = choose_profile(sizes.profile, verbose=False)
    machine = hardware_record(profile.device)
    print(f"hardware: {machine}")
    print(f"profile: {profile.name} ({profile.backbone} on {profile.device.type})")
    train_data, test_data, data = load_data(sizes, profile.data_set)
    print(f"data: {data['train_images']} training and {data['test_images']} test images "
          f"(of {data['train_images_found']} and {data['test_images_found']} found) from {data['root']}, "
          f"{data['layout']}")
    pipeline_started = time.perf_counter()
    pipeline = pipeline_benchmark.main(list(sizes.pipeline_arguments))
    pipeline_seconds = time.perf_counter() - pipeline_started
    simclr = train_simclr(sizes, train_data, test_data, deadline)
    total_seconds = time.perf_counter() - started
    print(f"check done in {total_seconds:.0f} s of the {60 * minutes:.0f} s allowed")
    return {"device": device_slug(profile.device), "hardware": machine, "data": data, "pipeline": pipeline,
            "pipeline_seconds": pipeline_seconds, "simclr": simclr, "minutes_allowed": minutes,
            "total_seconds": total_seconds}


def main(argv=None) -> dict:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes: the same code path on a CPU")
    parser.add_argument("--minutes", type=float, help="the time allowed, everything included (default 9; smoke 2)")
    parser.add_argument("--out", type=Path, help="the JSON record (default results/gpu-check-<device>.json)")
    args = parser.parse_args(argv)
    sizes = CPU_SMOKE if args.cpu_smoke else GPU
    minutes = args.minutes if args.minutes is not None else sizes.minutes
    if not minutes > 0:
        parser.error(f"--minutes must be positive, got {minutes}")
    if not args.cpu_smoke and not torch.cuda.is_available():
        parser.error("no GPU was found: this check is for a GPU machine; --cpu-smoke runs its code path on a CPU")
    printed = Tee(sys.stdout)
    with redirect_stdout(printed):
        record = check(sizes, minutes, started)
    record["printed"] = printed.copy.getvalue()
    out = args.out or results_base() / f"gpu-check-{record['device']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str))
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
