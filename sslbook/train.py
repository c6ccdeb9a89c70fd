"""One training loop for every method.

A method is an ``nn.Module`` with ``training_loss(batch) -> loss`` (and, if it
keeps state such as a target network, ``after_step(progress)``). The loop owns
everything else: data order, optimiser and schedule, mixed precision, the
progress bar, NaN checks, checkpoints, the log and the history.

Mixed precision covers the networks only (``sslbook.mixed_precision``): each of the
method's networks computes in bfloat16 or float16 and hands back float32, so augmentations,
pretext targets, memory banks and losses always run in float32, on every device.

The loop never waits for the device within a step: step losses (and the method's logged
tensors) stay on the device and are read in one transfer every ``READ_EVERY`` steps and at
each epoch's end, where the NaN check runs on the block read.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn

from . import distributed
from .checks import check_positive_int
from .data import ImageData
from .optimizers import LARS
from .paths import write_atomically
from .mixed_precision import (  # noqa: F401 (bf16_networks: for the tests)
    AUTOCAST_DTYPES, PRECISIONS, autocast_networks, bf16_networks, choose_precision, networks_of)
from .run_log import RunLog


class Batch(NamedTuple):
    """What a method sees at each step. ``images`` are uint8 on the training device."""

    images: torch.Tensor
    labels: torch.Tensor  # for supervised baselines only; SSL methods ignore them
    indices: torch.Tensor  # positions in the training set (memory banks use them)
    generator: torch.Generator  # seeded source of randomness for augmentations


OPTIMIZERS = ("sgd", "adamw", "lars")
READ_EVERY = 25  # steps between reads of the losses on the device (a read waits for the device to catch up)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"  # "sgd" (momentum 0.9), "adamw" or "lars" (sslbook.optimizers, momentum 0.9)
    lr: float = 0.06
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    seed: int = 0
    max_steps: int | None = None  # stop early after this many steps (a time budget in steps)
    sync_batch_norm: bool = False  # with several processes: batch statistics over the global batch
    compile: bool = False  # torch.compile the method's networks (see networks_of), in place
    precision: str = "auto"  # "bf16", "fp16" (with loss scaling) or "fp32" networks; "auto": see choose_precision

    def total_steps(self, n_images: int) -> int:
        """The steps a run on ``n_images`` training images takes: whole batches per epoch, at most
        ``max_steps``."""
        steps = self.epochs * (n_images // self.batch_size)
        return steps if self.max_steps is None else min(steps, self.max_steps)

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (contrastive losses need negatives), got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZERS))}, got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass
class History:
    """Per-step losses and learning rates, and per-epoch metrics (filled by ``on_epoch_end``).

    ``seconds`` is training time only: not the checkpoints, nor ``on_epoch_end``'s evaluations;
    with ``torch.compile`` it includes the compilation, in the first steps (``includes_compile``).
    """

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0
    includes_compile: bool = False
    precision: str = ""  # the networks' precision as trained: "bf16", "fp16" or "fp32" (choose_precision)

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds else float("nan")

    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.steps]

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose ``on_epoch_end`` kNN accuracy is highest (the first such), None without kNN."""
        scored = [entry for entry in self.epochs if "knn" in entry]
        return max(scored, key=lambda entry: entry["knn"])["epoch"] if scored else None

    @property
    def best_knn(self) -> float | None:
        return max((entry["knn"] for entry in self.epochs if "knn" in entry), default=None)

    def state(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def make_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "lars":
        return LARS(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def progress_bar(total: int, description: str, enabled: bool):
    """A terminal or notebook bar that redraws at most once a second.

    In a notebook every redraw is a few messages to the front end; a kernel that sends thousands
    while nobody reads them (nbval reads a cell's output only when the cell ends) drops messages
    past ZMQ's high-water mark, possibly the one that says the cell has finished.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=True, dynamic_ncols=True, mininterval=1.0)


def compile_networks(method: nn.Module) -> None:
    """torch.compile each network of ``method`` (``networks_of``) in place.

    In place, so parameter names and checkpoints stay those of the eager modules; the method's
    own ``training_loss`` (augmentations, pretext labels) stays eager.
    """
    for network in networks_of(method):
        network.compile()


class _LossOf(nn.Module):
    """Calls the method's ``training_loss`` from ``forward``, as DistributedDataParallel requires."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch: Batch):
        return self.method.training_loss(batch)


class _PendingSteps:
    """Step entries whose loss and logged values are still tensors on the device, read in one transfer."""

    def __init__(self):
        self.entries: list[dict] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: dict) -> None:
        self.entries.append({key: value.detach() if isinstance(value, torch.Tensor) else value
                             for key, value in entry.items()})

    def read(self) -> list[dict]:
        """The entries with every tensor as a Python float (one ``tolist``: one wait for the device)."""
        tensors = [value for entry in self.entries for value in entry.values() if isinstance(value, torch.Tensor)]
        values = iter(torch.stack([t.reshape(()).to(tensors[0].device) for t in tensors]).tolist() if tensors else [])
        read = [{key: next(values) if isinstance(value, torch.Tensor) else value for key, value in entry.items()}
                for entry in self.entries]
        self.entries = []
        return read


def _first_not_finite(entries: list[dict]) -> int | None:
    return next((index for index, entry in enumerate(entries) if not math.isfinite(entry["loss"])), None)


def _not_finite_error(entry: dict) -> FloatingPointError:
    return FloatingPointError(
        f"the loss became {entry['loss']} at step {entry['step']} (epoch {entry['epoch']}). Likely causes: a "
        "temperature too low (raise it), a learning rate too high (lower it or add warm-up), "
        "a network whose activations overflow in bfloat16 or float16 (train in float32: precision='fp32', "
        "or --precision fp32 on the command line), or inputs that are not finite."
    )


class _InterruptsBetweenSteps:
    """Holds a Ctrl-C (SIGINT) back until the loop reaches a point where its state is whole (``check``),
    so that the checkpoint written on the way out resumes exactly; a second Ctrl-C stops at once.

    Installed in the main thread over Python's own handler only (a terminal, a Jupyter cell, pytest).
    """

    def __init__(self):
        self.requested = self.raised_between_steps = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signal_number, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again: stop at once, saving nothing)", file=sys.stderr)

    def check(self) -> None:
        if self.requested:
            self.raised_between_steps = True
            raise KeyboardInterrupt

    def __exit__(self, *exception):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def save_atomically(state: dict, path: Path, save: Callable[[dict, Path], None] | None = None) -> None:
    """Write ``state`` with ``save`` (default ``torch.save``) atomically (``paths.write_atomically``): a write
    that is cut off leaves the previous checkpoint as it was."""
    # torch.save is looked up at each call, so tests can replace it
    write_atomically(path, lambda temporary: (save or torch.save)(state, temporary))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint written by :func:`train` (tensors and plain values only: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first or check the path")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable sslbook checkpoint ({type(error).__name__}: {error}); "
                         "delete it and train again") from None
    if not isinstance(state, dict) or "method" not in state or "epoch" not in state:
        raise ValueError(f"{path} is a PyTorch file but not an sslbook checkpoint (no method state or epoch); "
                         "pass a checkpoint written by sslbook.train.train")
    return state


def _check_same_run(checkpoint: Path, saved: dict, now: dict) -> None:
    """Refuse to resume a checkpoint of another method, or of the same method with other settings."""
    from .runs import differences

    if now.get("method") is not None and saved.get("method") not in (None, now["method"]):
        raise ValueError(f"{checkpoint} holds a {saved['method']!r} run, not {now['method']!r}; "
                         "choose another output folder or delete the checkpoint")
    if now.get("fingerprint") is not None and saved.get("fingerprint") != now["fingerprint"]:
        raise ValueError(f"{checkpoint} holds a run with other settings, so it is not resumed; it differs in: "
                         f"{differences(saved.get('description', {}), now.get('description', {}))}. "
                         "Choose another output folder, or delete the checkpoint to train afresh")


def train(
    method: nn.Module,
    data: ImageData,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 5,
    on_epoch_end: Callable[[nn.Module, int], dict] | None = None,
    progress: bool = True,
    description: str | None = None,
    metadata: dict | None = None,
    log: str | Path | None = None,
    tensorboard: str | Path | None = None,
) -> History:
    """Train ``method`` on ``data`` and return its history.

    With ``checkpoint`` set, the state is saved every ``checkpoint_every`` epochs, at the end,
    and on a Ctrl-C (saved at the end of the step it interrupted, then raised again); a run
    finds and resumes its checkpoint: on the CPU, a resumed run ends with the same weights as
    an uninterrupted one. ``on_epoch_end(method, epoch)`` may return metrics (for instance a
    kNN accuracy) that go into the history. ``log``: a JSON-lines file (``sslbook.run_log``)
    that grows as the run goes; ``tensorboard``: a folder for TensorBoard event files.

    Launched by ``torchrun`` with several processes, each process trains on
    its share of every global batch of ``config.batch_size`` images through
    DistributedDataParallel; process 0 shows progress and writes checkpoints and logs.
    ``metadata`` (plain values, such as the method's name) is stored in the
    checkpoint; resuming from a checkpoint of another method is refused.
    """
    if device is None:
        device = torch.device(f"cuda:{torch.cuda.current_device()}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if not hasattr(method, "training_loss"):
        raise TypeError(f"{type(method).__name__} has no training_loss(batch) method; see sslbook.methods")
    check_positive_int(checkpoint_every, "checkpoint_every", "5 (epochs)")
    processes, this_rank = distributed.world_size(), distributed.rank()
    if config.batch_size % processes:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {processes} processes; "
                         f"use a multiple of {processes}")
    if config.sync_batch_norm and processes > 1:
        if device.type != "cuda":
            raise ValueError("sync_batch_norm needs GPUs (PyTorch's SyncBatchNorm has no CPU version); "
                             "set sync_batch_norm=False for CPU processes")
        method = distributed.synchronise_batch_norm(method)
    precision = choose_precision(config.precision, device)
    method.to(device)
    method.to(memory_format=torch.channels_last)  # convolutions run faster so on GPUs and on CPUs alike
    if config.compile:
        compile_networks(method)
    images, labels = data.images.to(device), data.labels.to(device)
    steps_per_epoch = len(data) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the {len(data)} training images; "
            "lower the batch size or use more data"
        )
    total_steps = config.total_steps(len(data))
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    step_module: nn.Module = _LossOf(method)
    if processes > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer([p for p in method.parameters() if p.requires_grad], config)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")  # float16 gradients would underflow
    order_generator = torch.Generator().manual_seed(config.seed)  # the same global order on every process
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1 + this_rank)
    history, start_epoch, start_batch = History(), 0, 0

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)  # on the CPU: load_state_dict moves each tensor where it belongs
        _check_same_run(checkpoint, state.get("metadata", {}), metadata or {})
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and state.get("scaler"):  # absent: saved by a run in another precision
            scaler.load_state_dict(state["scaler"])
        order_generator.set_state(state["order_generator"])
        if processes == 1:
            augment_generator.set_state(state["augment_generator"].to(augment_generator.get_state().device))
        else:  # the checkpoint holds process 0's stream only: give each process a fresh one of its own
            augment_generator.manual_seed(config.seed + 1 + this_rank + 7919 * state["epoch"])
        history = History(**state["history"])
        start_epoch, start_batch = state["epoch"], state.get("batch", 0)  # "batch": steps done in that epoch
    history.precision = precision
    history.includes_compile = history.includes_compile or config.compile

    # Where the run stands, kept whole between steps: the epoch under way, its steps done, and the
    # data order's generator before that epoch's permutation (a resumed run draws it again).
    position, order_at_position = (start_epoch, start_batch), order_generator.get_state()
    saved_at, epoch_started = position, None
    step = start_epoch * steps_per_epoch + start_batch
    run_log = None
    if this_rank == 0 and (log is not None or tensorboard is not None):
        run_log = RunLog(log, tensorboard, steps_done=len(history.steps), epochs_done=start_epoch)
    pending, interrupts = _PendingSteps(), _InterruptsBetweenSteps()
    bar = progress_bar(total_steps, description or type(method).__name__, progress and this_rank == 0)
    bar.update(min(step, total_steps))

    def record(entries: list[dict]) -> None:
        """Steps read from the device: checked, then into the history, the log and the bar."""
        bad = _first_not_finite(entries)
        if run_log is not None:
            run_log.steps(entries[:bad])
        if bad is not None:
            raise _not_finite_error(entries[bad])
        history.steps.extend(entries)
        if entries:
            bar.set_postfix(loss=f"{entries[-1]['loss']:.3f}", refresh=False)  # shown at the next redraw

    def save() -> None:
        nonlocal saved_at
        record(pending.read())
        save_atomically({
            "method": method.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "order_generator": order_at_position, "augment_generator": augment_generator.get_state().cpu(),
            "history": history.state(), "epoch": position[0], "batch": position[1], "metadata": metadata or {},
        }, checkpoint)
        saved_at = position

    method.train()
    try:
        with autocast_networks(method, AUTOCAST_DTYPES[precision]), interrupts:
            for epoch in range(start_epoch, config.epochs):
                if step >= total_steps:
                    break
                permutation = torch.randperm(len(data), generator=order_generator).to(device)
                epoch_started = time.perf_counter()
                for batch_number in range(start_batch if epoch == start_epoch else 0, steps_per_epoch):
                    if step >= total_steps:
                        break
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * learning_rate_factor(step, total_steps, warmup_steps)
                    index = permutation[batch_number * config.batch_size:(batch_number + 1) * config.batch_size]
                    index = index.chunk(processes)[this_rank]
                    batch = Batch(images[index], labels[index], index, augment_generator)
                    output = step_module(batch)
                    loss, logs = (output, {}) if isinstance(output, torch.Tensor) else (output["loss"], output)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    if hasattr(method, "after_step"):
                        method.after_step((step + 1) / total_steps)
                    pending.add({"step": step, "epoch": epoch, "loss": loss, "lr": optimizer.param_groups[0]["lr"],
                                 **{k: v if isinstance(v, torch.Tensor) else float(v) for k, v in logs.items()
                                    if k != "loss"}})
                    history.images_seen += len(index) * processes
                    step += 1
                    position = (epoch, batch_number + 1)
                    bar.update(1)
                    if len(pending) == READ_EVERY:
                        record(pending.read())
                    interrupts.check()
                record(pending.read())  # waits for the device: the time below is the epoch's whole work
                seconds = time.perf_counter() - epoch_started
                history.seconds, epoch_started = history.seconds + seconds, None
                metrics = {}
                if on_epoch_end is not None:
                    method.eval()
                    metrics = on_epoch_end(method, epoch)
                    history.epochs.append({"epoch": epoch, **metrics})
                    method.train()
                if run_log is not None:
                    run_log.epoch({"epoch": epoch, "seconds": seconds, **metrics}, step)
                position, order_at_position = (epoch + 1, 0), order_generator.get_state()
                due = (epoch + 1) % checkpoint_every == 0 or step >= total_steps
                if checkpoint is not None and this_rank == 0 and due:
                    save()
                interrupts.check()
    except KeyboardInterrupt:
        if interrupts.raised_between_steps and checkpoint is not None and this_rank == 0 and position != saved_at:
            record(pending.read())
            if epoch_started is not None:
                history.seconds += time.perf_counter() - epoch_started
            save()
            print(f"saved {checkpoint} after step {len(history.steps)}; train again to resume", file=sys.stderr)
        raise
    finally:
        bar.close()
        if run_log is not None:
            run_log.close()
    method.eval()
    return history
