"""Command line: train, resume and evaluate any method of the book.

    python -m sslbook list
    python -m sslbook train simclr --profile quick --epochs 12 --out runs/simclr
    python -m sslbook eval runs/simclr/checkpoint.pt
    python -m sslbook classroom --out classroom

``train`` writes ``checkpoint.pt`` (resumed when present) and ``<method>.json`` (method, profile,
recipe, kNN, linear probe, alignment, uniformity, wall time, images per second, hardware) into the
output folder; launch it with ``torchrun --nproc_per_node=P -m sslbook train ...`` to train on P
processes. ``classroom`` writes a student copy (solutions removed, checks kept) and an instructor
copy of every chapter notebook.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import distributed, registry, runs
from .augment import simclr_cifar
from .evaluate import evaluate
from .profiles import PROFILES, choose_profile
from .results import hardware
from .train import PRECISIONS, load_checkpoint, train


def command_list(args) -> int:
    width = max(map(len, registry.METHODS))
    for family in registry.FAMILIES:
        print(f"{family}:")
        for name, entry in registry.METHODS.items():
            if entry.family == family:
                print(f"  {name:<{width}} {entry.summary}")
    return 0


def run_from_arguments(args, profile, train_data) -> runs.Run:
    """The run ``train`` trains: the method's own settings, changed only where an option is given."""
    overrides = {"seed": args.seed}
    for option, field in (("epochs", "epochs"), ("batch_size", "batch_size"), ("precision", "precision")):
        if getattr(args, option) is not None:
            overrides[field] = getattr(args, option)
    if args.compile:
        overrides["compile"] = True
    return runs.method_run(args.method, profile, train_data, **overrides)


def command_train(args) -> int:
    registry.get(args.method)  # an unknown method stops before any data is loaded
    distributed.init_from_environment()
    profile = choose_profile(args.profile, verbose=distributed.rank() == 0)
    train_data, test_data = profile.load_data(args.data)
    run = run_from_arguments(args, profile, train_data)
    fingerprint, description = runs.run_fingerprint(run.method, run.config, train_data)
    out = Path(args.out)
    metadata = {"method": args.method, "profile": profile.name, "settings": run.settings,
                "fingerprint": fingerprint, "description": description}
    started = time.perf_counter()
    history = train(run.method, train_data, run.config, device=profile.device, checkpoint=out / "checkpoint.pt",
                    description=args.method, progress=not args.no_progress, metadata=metadata)
    if distributed.rank() != 0:
        return 0
    scores = evaluate(run.encoder, train_data, test_data, simclr_cifar())
    record = {"method": args.method, "profile": profile.name, **scores, "settings": run.settings,
              "recipe": asdict(run.config), "fingerprint": fingerprint, "backbone": profile.backbone,
              "wall_seconds": time.perf_counter() - started, "train_seconds": history.seconds,
              "images_per_second": history.images_per_second, "hardware": hardware(),
              "processes": distributed.world_size()}
    (out / f"{args.method}.json").write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps({k: record[k] for k in ("knn", "linear", "alignment", "uniformity")}, indent=2))
    print(f"wrote {out / 'checkpoint.pt'} and {out / (args.method + '.json')}")
    return 0


def command_eval(args) -> int:
    state = load_checkpoint(args.checkpoint)
    metadata = state.get("metadata", {})
    if "method" not in metadata:
        raise ValueError(f"{args.checkpoint} does not say which method it holds; evaluate checkpoints "
                         "written by `python -m sslbook train`")
    entry = registry.get(metadata["method"])
    profile = choose_profile(args.profile or metadata.get("profile"))
    train_data, test_data = profile.load_data(args.data)
    torch.manual_seed(0)
    method = entry.build(profile, train_data, **{**entry.settings_in(profile), **metadata.get("settings", {})})
    method.load_state_dict(state["method"])
    method.to(profile.device)
    scores = evaluate(entry.encoder(method), train_data, test_data, simclr_cifar())
    print(json.dumps({"method": metadata["method"], "epoch": state["epoch"], **scores}, indent=2))
    return 0


def command_classroom(args) -> int:
    from .classroom import write_copies

    out = Path(args.out)
    written = write_copies(out)
    print(f"wrote {len(written)} student notebooks to {out / 'student'} and their instructor copies to "
          f"{out / 'instructor'}")
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m sslbook", description=__doc__.splitlines()[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the methods").set_defaults(run=command_list)
    train_parser = commands.add_parser("train", help="train a method (resumes its checkpoint)")
    train_parser.add_argument("method")
    train_parser.add_argument("--profile", choices=sorted(PROFILES), help="default: by the hardware")
    train_parser.add_argument("--epochs", type=int)
    train_parser.add_argument("--batch-size", type=int)
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--data", help="data folder (default: $SSLBOOK_DATA or ~/.cache/sslbook)")
    train_parser.add_argument("--out", default="runs/run", help="output folder for checkpoint and results")
    train_parser.add_argument("--compile", action="store_true", help="torch.compile the method's networks")
    train_parser.add_argument("--precision", choices=PRECISIONS,
                              help="the networks' precision (default auto: bf16 on a GPU, fp32 on a CPU)")
    train_parser.add_argument("--no-progress", action="store_true")
    train_parser.set_defaults(run=command_train)
    eval_parser = commands.add_parser("eval", help="evaluate a saved checkpoint")
    eval_parser.add_argument("checkpoint")
    eval_parser.add_argument("--profile", choices=sorted(PROFILES))
    eval_parser.add_argument("--data")
    eval_parser.set_defaults(run=command_eval)
    classroom_parser = commands.add_parser("classroom", help="write student and instructor copies of the notebooks")
    classroom_parser.add_argument("--out", default="classroom", help="folder for student/ and instructor/")
    classroom_parser.set_defaults(run=command_classroom)
    return main_parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
