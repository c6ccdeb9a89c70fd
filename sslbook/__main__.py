"""Command line: train, resume and evaluate any method of the book (also as the command ``sslbook``).

    python -m sslbook list
    python -m sslbook train simclr --profile quick --epochs 12 --out runs/simclr
    python -m sslbook eval runs/simclr/checkpoint.pt
    python -m sslbook export runs/simclr/checkpoint.pt --out simclr-encoder.safetensors
    python -m sslbook classroom --out classroom
    python -m sslbook sweep simclr --samples 3

``train`` writes ``checkpoint.pt`` (resumed when present), ``log.jsonl`` (one JSON line per step
and per epoch, as it goes) and ``<method>.json`` (method, profile, recipe, kNN, linear probe,
alignment, uniformity, wall time, images per second, hardware) into the output folder; launch it
with ``torchrun --nproc_per_node=P -m sslbook train ...`` to train on P processes. ``classroom``
writes a student copy (solutions removed, checks kept) and an instructor copy of every chapter
notebook. ``sweep`` trains each method's chapter run on several class-balanced samples and seeds and
writes the spread of its results into ``results/sweep-<profile>/``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path

import torch

from . import __version__, distributed, registry, runs
from .augment import simclr_cifar
from .evaluate import evaluate
from .export import FORMATS as EXPORT_FORMATS, export_encoder
from .profiles import PROFILES, choose_profile
from .results import hardware
from .run_log import TENSORBOARD_MISSING, summary_writer_class
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
    if args.tensorboard:
        try:
            summary_writer_class()
        except ImportError:
            print(f"error: --tensorboard: {TENSORBOARD_MISSING}", file=sys.stderr)
            return 2
    with redirect_stdout(sys.stderr):  # status lines; standard output carries the JSON only
        record = _train(args)
    if record is not None:
        print(json.dumps({k: record[k] for k in TRAIN_OUTPUT}, indent=2))
    return 0


TRAIN_OUTPUT = ("method", "knn", "linear", "alignment", "uniformity", "best_epoch", "best_knn")


def knn_every(every: int | None, epochs: int, train_data, test_data):
    """``on_epoch_end`` for ``--knn-every``: the test set's kNN accuracy every ``every`` epochs and after the last."""
    if every is None:
        return None

    def on_epoch_end(method, epoch: int) -> dict:
        if distributed.rank() != 0 or ((epoch + 1) % every and epoch + 1 != epochs):
            return {}
        return evaluate(method.encoder, train_data, test_data, probe=False)

    return on_epoch_end


def _train(args) -> dict | None:
    distributed.init_from_environment()
    profile = choose_profile(args.profile, verbose=distributed.rank() == 0)
    train_data, test_data = profile.load_data(args.data)
    run = run_from_arguments(args, profile, train_data)
    fingerprint, description = run.fingerprint, run.description
    out = Path(args.out)
    metadata = {"method": args.method, "profile": profile.name, "settings": run.settings,
                "fingerprint": fingerprint, "description": description}
    started = time.perf_counter()
    history = train(run.method, train_data, run.config, device=profile.device, checkpoint=out / "checkpoint.pt",
                    checkpoint_every=args.checkpoint_every, description=args.method, progress=not args.no_progress,
                    metadata=metadata, log=out / "log.jsonl",
                    tensorboard=out / "tensorboard" if args.tensorboard else None,
                    on_epoch_end=knn_every(args.knn_every, run.config.epochs, train_data, test_data))
    if distributed.rank() != 0:
        return None
    scores = evaluate(run.encoder, train_data, test_data, simclr_cifar())
    record = {"method": args.method, "profile": profile.name, **scores, "settings": run.settings,
              "recipe": asdict(run.config), "fingerprint": fingerprint, "backbone": profile.backbone,
              "best_epoch": history.best_epoch, "best_knn": history.best_knn, "precision": history.precision,
              "wall_seconds": time.perf_counter() - started, "train_seconds": history.seconds,
              "train_seconds_include_compile": history.includes_compile,
              "images_per_second": history.images_per_second, "hardware": hardware(),
              "processes": distributed.world_size()}
    (out / f"{args.method}.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"wrote {out / 'checkpoint.pt'}, {out / 'log.jsonl'} and {out / (args.method + '.json')}")
    return record


def command_eval(args) -> int:
    with redirect_stdout(sys.stderr):  # status lines; standard output carries the JSON only
        record = _evaluate(args)
    print(json.dumps(record, indent=2))
    return 0


def _evaluate(args) -> dict:
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
    scores = evaluate(method.encoder, train_data, test_data, simclr_cifar())
    return {"method": metadata["method"], "epoch": state["epoch"], **scores}


def command_export(args) -> int:
    try:
        metadata = export_encoder(args.checkpoint, args.out, args.format, overwrite=args.force)
    except ModuleNotFoundError as error:  # safetensors, an optional extra
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote the {metadata['architecture']} encoder of {metadata['method']} to {args.out}", file=sys.stderr)
    print(json.dumps(metadata, indent=2))
    return 0


def command_classroom(args) -> int:
    from .classroom import write_copies

    out = Path(args.out)
    written = write_copies(out, Path(args.book) if args.book else None, args.format)
    if args.format == "otter":
        print(f"wrote {len(written)} otter-grader assignment notebooks to {out / 'otter'}; `otter assign "
              f"NOTEBOOK DIST` makes each one's student copy and autograder", file=sys.stderr)
    else:
        print(f"wrote {len(written)} student notebooks to {out / 'student'} and their instructor copies to "
              f"{out / 'instructor'}", file=sys.stderr)
    return 0


def command_sweep(args) -> int:
    from .sweep import sweep_method

    profile = choose_profile(args.profile)
    for name in args.methods or list(registry.METHODS):
        with redirect_stdout(sys.stderr):
            summary = sweep_method(name, profile, args.samples, args.data)["summary"]
        print(json.dumps({"method": name, **{key: round(value["mean"], 2) for key, value in summary.items()}}))
    return 0


def whole_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, at least 1, got {text!r}")
    return int(text)


def method_name(text: str) -> str:
    try:
        return registry.get(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


EXAMPLES = """examples:
  sslbook list
  sslbook train simclr --profile quick --out runs/simclr      # the SimCLR chapter's run
  sslbook train simclr --profile gpu --out runs/simclr-gpu   # about 10 minutes on a T4
  sslbook train simclr --profile full --epochs 100 --batch-size 256 --out runs/simclr-100
  sslbook eval runs/simclr/checkpoint.pt | jq .knn
  sslbook export runs/simclr/checkpoint.pt --out simclr-encoder.safetensors
  sslbook classroom --out classroom
  torchrun --nproc_per_node=2 -m sslbook train simclr --out runs/simclr-ddp

Status lines go to standard error and results (JSON) to standard output. Exit status: 0 done,
1 a run that could not be done (missing data or checkpoint, a checkpoint of other settings),
2 a usage error."""


def parser() -> argparse.ArgumentParser:
    program = "sslbook" if Path(sys.argv[0]).name == "sslbook" else "python -m sslbook"
    main_parser = argparse.ArgumentParser(prog=program, description=__doc__.split("\n\n")[0].splitlines()[0],
                                          epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    main_parser.add_argument("--version", action="version", version=f"sslbook {__version__}")
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the methods, by family").set_defaults(run=command_list)
    method_list = ", ".join(registry.METHODS)
    train_parser = commands.add_parser(
        "train", help="train a method with its chapter's settings (resumes an unfinished run)",
        description="Train METHOD with the settings its chapter trains (sslbook/methods/METHOD.py), changed "
                    "only where an option says so; writes checkpoint.pt and METHOD.json into --out and "
                    "resumes an unfinished checkpoint there with the same settings.",
        epilog=f"methods: {method_list}")
    train_parser.add_argument("method", type=method_name, metavar="METHOD", help="one of the methods listed below")
    train_parser.add_argument("--profile", choices=sorted(PROFILES),
                              help="quick (small CNN, 5,000 images, CPU), gpu (ResNet-18, all images, the "
                                   "epochs that fit 10 minutes on a T4) or full (ResNet-18, all images, the "
                                   "paper-scale epochs); default: gpu on a GPU, else quick")
    train_parser.add_argument("--epochs", type=int, help="default: the method's epochs in the profile")
    train_parser.add_argument("--batch-size", type=int, help="global batch size; default: the method's")
    train_parser.add_argument("--seed", type=int, default=0,
                              help="seeds the initial weights, data order and augmentations (default 0)")
    train_parser.add_argument("--data", help="data folder (default: $SSLBOOK_DATA or ~/.cache/sslbook)")
    train_parser.add_argument("--out", default="runs/run", help="output folder (default runs/run)")
    train_parser.add_argument("--compile", action="store_true", help="torch.compile the method's networks")
    train_parser.add_argument("--precision", choices=PRECISIONS,
                              help="the networks' precision (default auto: bf16 on GPUs of compute capability 8.0 "
                                   "and later, fp16 with loss scaling on older GPUs, fp32 on a CPU)")
    train_parser.add_argument("--checkpoint-every", type=whole_number, default=5, metavar="N",
                              help="save the checkpoint every N epochs (default 5), at the end and on Ctrl-C")
    train_parser.add_argument("--knn-every", type=whole_number, metavar="N",
                              help="kNN accuracy on the test set every N epochs and after the last, into "
                                   "log.jsonl; METHOD.json then records the best epoch's (default: at the end only)")
    train_parser.add_argument("--tensorboard", action="store_true",
                              help="also write TensorBoard event files into OUT/tensorboard "
                                   '(needs pip install "sslbook[tensorboard]")')
    train_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    train_parser.set_defaults(run=command_train)
    eval_parser = commands.add_parser("eval", help="evaluate a saved checkpoint (kNN, linear probe, alignment, "
                                                   "uniformity)")
    eval_parser.add_argument("checkpoint", help="a checkpoint.pt written by train")
    eval_parser.add_argument("--profile", choices=sorted(PROFILES),
                             help="the profile whose data to evaluate on (default: the checkpoint's)")
    eval_parser.add_argument("--data", help="data folder (default: $SSLBOOK_DATA or ~/.cache/sslbook)")
    eval_parser.set_defaults(run=command_eval)
    export_parser = commands.add_parser(
        "export", help="write a checkpoint's encoder weights and metadata (safetensors or PyTorch)",
        description="Write the encoder of a checkpoint written by train: its weights, and metadata that name "
                    "the method, profile, architecture and the preprocessing the encoder expects.")
    export_parser.add_argument("checkpoint", help="a checkpoint.pt written by train")
    export_parser.add_argument("--out", required=True, help="the file to write")
    export_parser.add_argument("--format", choices=EXPORT_FORMATS, default="safetensors",
                               help="safetensors (default; needs sslbook[export]) or torch: a file of "
                                    "{state_dict, metadata} that loads with torch.load(weights_only=True)")
    export_parser.add_argument("--force", action="store_true", help="replace --out when it exists")
    export_parser.set_defaults(run=command_export)
    classroom_parser = commands.add_parser("classroom", help="write student and instructor copies of the notebooks")
    classroom_parser.add_argument("--out", default="classroom", help="folder for student/ and instructor/")
    classroom_parser.add_argument("--book", help="the book's folder (default: the one around the current folder)")
    classroom_parser.add_argument("--format", choices=("copies", "otter"), default="copies",
                                  help="copies: student and instructor notebooks (default); otter: otter-grader "
                                       "assignment notebooks, with public and hidden tests, into --out/otter")
    classroom_parser.set_defaults(run=command_classroom)
    sweep_parser = commands.add_parser(
        "sweep", help="train methods' chapter runs on several samples and seeds; write their spread",
        description="For each METHOD (default: all), train or load its chapter run on --samples class-balanced "
                    "samples of the training images, sample s with seed s, and write the runs and their mean, "
                    "minimum and maximum into results/sweep-PROFILE/METHOD.json.")
    sweep_parser.add_argument("methods", nargs="*", type=method_name, metavar="METHOD",
                              help="methods to sweep (default: every method)")
    sweep_parser.add_argument("--samples", type=whole_number, default=3, help="samples and seeds (default 3)")
    sweep_parser.add_argument("--profile", choices=sorted(PROFILES), help="default: gpu on a GPU, else quick")
    sweep_parser.add_argument("--data", help="data folder (default: $SSLBOOK_DATA or ~/.cache/sslbook)")
    sweep_parser.set_defaults(run=command_sweep)
    return main_parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader stopped early (`sslbook list | head -1`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
