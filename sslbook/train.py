"""One training loop for every method.

A method is an ``nn.Module`` with ``training_loss(batch) -> loss`` (and, if it
keeps state such as a target network, ``after_step(progress)``). The loop owns
everything else: data order, optimiser and schedule, mixed precision on GPU,
the progress bar, NaN checks, checkpoints and the history.

Mixed precision covers the networks only (``bf16_networks``): each of the method's
networks computes in bfloat16 and hands back float32, so augmentations, pretext
targets, memory banks and losses always run in float32, on every device.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn

from . import distributed
from .data import ImageData


class Batch(NamedTuple):
    """What a method sees at each step. ``images`` are uint8 on the training device."""

    images: torch.Tensor
    labels: torch.Tensor  # for supervised baselines only; SSL methods ignore them
    indices: torch.Tensor  # positions in the training set (memory banks use them)
    generator: torch.Generator  # seeded source of randomness for augmentations


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adamw"
    lr: float = 0.06
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    seed: int = 0
    max_steps: int | None = None  # stop early after this many steps (a time budget in steps)
    sync_batch_norm: bool = False  # with several processes: batch statistics over the global batch
    compile: bool = False  # torch.compile the method's networks (see networks_of), in place
    precision: str = "auto"  # "bf16": networks in bfloat16 (see bf16_networks); "fp32"; "auto": bf16 on GPU only

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (contrastive losses need negatives), got {self.batch_size}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass
class History:
    """Per-step losses and learning rates, and per-epoch metrics (filled by ``on_epoch_end``)."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_seen: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.seconds if self.seconds else float("nan")

    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.steps]

    def state(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "seconds": self.seconds, "images_seen": self.images_seen}


def make_optimizer(parameters, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
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


def networks_of(method: nn.Module) -> list[nn.Module]:
    """The method's networks: its direct submodules that have parameters (ModuleList and ModuleDict opened).

    Submodules without parameters, such as a memory bank of stored features, are not networks.
    """
    networks = []
    for child in method.children():
        members = list(child.children()) if isinstance(child, (nn.ModuleList, nn.ModuleDict)) else [child]
        networks += [m for m in members if any(True for _ in m.parameters()) and not any(m is n for n in networks)]
    return networks


def _to_float32(output):
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (tuple, list)):
        return type(output)(_to_float32(item) for item in output)
    if isinstance(output, dict):
        return {key: _to_float32(value) for key, value in output.items()}
    return output


@contextmanager
def bf16_networks(method: nn.Module, enabled: bool = True):
    """Inside, every network of ``method`` (``networks_of``) runs under bfloat16 autocast and returns float32.

    Only the networks, where the FLOPs are: augmentations, pretext targets, memory banks and losses
    run outside any autocast region, in float32, so they compute the same on every device (autocast's
    per-op rules differ between CPU and GPU). On exit the networks' own forward methods are restored.
    A network the method reaches other than through a direct submodule's forward (MAE's
    ``encoder.forward_tokens``, the autoencoders inside ``AutoencoderFeatures``) stays in float32:
    correct, only slower.
    """
    patched = []
    try:
        for network in networks_of(method) if enabled else []:
            device_type = next(network.parameters()).device.type

            def autocast_forward(*args, _forward=network.forward, _device_type=device_type, **kwargs):
                with torch.autocast(_device_type, dtype=torch.bfloat16):
                    output = _forward(*args, **kwargs)
                return _to_float32(output)

            network.forward = autocast_forward
            patched.append(network)
        yield method
    finally:
        for network in patched:
            del network.forward


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


def _check_finite(loss: torch.Tensor, step: int, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss.item()} at step {step} (epoch {epoch}). Likely causes: a "
            "temperature too low (raise it), a learning rate too high (lower it or add warm-up), "
            "a network whose activations overflow in bfloat16 (train in float32: precision='fp32', "
            "or --precision fp32 on the command line), or inputs that are not finite."
        )


def save_atomically(state: dict, path: Path) -> None:
    """Write ``state`` to a temporary file beside ``path``, then rename it: a write that is cut off
    (a killed kernel, a full disk) leaves the previous checkpoint as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        torch.save(state, temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


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
    on_epoch_end: Callable[[nn.Module, int], dict] | None = None,
    progress: bool = True,
    description: str | None = None,
    metadata: dict | None = None,
) -> History:
    """Train ``method`` on ``data`` and return its history.

    With ``checkpoint`` set, the state is saved after every epoch and a run
    finds and resumes its checkpoint: on the CPU, a resumed run ends with the
    same weights as an uninterrupted one. ``on_epoch_end(method, epoch)`` may
    return metrics (for instance a kNN accuracy) that go into the history.

    Launched by ``torchrun`` with several processes, each process trains on
    its share of every global batch of ``config.batch_size`` images through
    DistributedDataParallel; process 0 shows progress and writes checkpoints.
    ``metadata`` (plain values, such as the method's name) is stored in the
    checkpoint; resuming from a checkpoint of another method is refused.
    """
    if device is None:
        device = torch.device(f"cuda:{torch.cuda.current_device()}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if not hasattr(method, "training_loss"):
        raise TypeError(f"{type(method).__name__} has no training_loss(batch) method; see sslbook.methods")
    processes, this_rank = distributed.world_size(), distributed.rank()
    if config.batch_size % processes:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the {processes} processes; "
                         f"use a multiple of {processes}")
    if config.sync_batch_norm and processes > 1:
        if device.type != "cuda":
            raise ValueError("sync_batch_norm needs GPUs (PyTorch's SyncBatchNorm has no CPU version); "
                             "set sync_batch_norm=False for CPU processes")
        method = distributed.synchronise_batch_norm(method)
    method.to(device)
    on_gpu = device.type == "cuda"
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and on_gpu)
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
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    step_module: nn.Module = _LossOf(method)
    if processes > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer([p for p in method.parameters() if p.requires_grad], config)
    order_generator = torch.Generator().manual_seed(config.seed)  # the same global order on every process
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1 + this_rank)
    history, start_epoch = History(), 0

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)  # on the CPU: load_state_dict moves each tensor where it belongs
        _check_same_run(checkpoint, state.get("metadata", {}), metadata or {})
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        order_generator.set_state(state["order_generator"])
        if processes == 1:
            augment_generator.set_state(state["augment_generator"].to(augment_generator.get_state().device))
        else:  # the checkpoint holds process 0's stream only: give each process a fresh one of its own
            augment_generator.manual_seed(config.seed + 1 + this_rank + 7919 * state["epoch"])
        history = History(**state["history"])
        start_epoch = state["epoch"]

    step = start_epoch * steps_per_epoch
    bar = progress_bar(total_steps, description or type(method).__name__, progress and this_rank == 0)
    bar.update(min(step, total_steps))
    method.train()
    with bf16_networks(method, use_bf16):
        for epoch in range(start_epoch, config.epochs):
            if step >= total_steps:
                break
            started = time.perf_counter()
            permutation = torch.randperm(len(data), generator=order_generator).to(device)
            for batch_number in range(steps_per_epoch):
                if step >= total_steps:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * learning_rate_factor(step, total_steps, warmup_steps)
                index = permutation[batch_number * config.batch_size:(batch_number + 1) * config.batch_size]
                index = index.chunk(processes)[this_rank]
                batch = Batch(images[index], labels[index], index, augment_generator)
                output = step_module(batch)
                loss, logs = (output, {}) if isinstance(output, torch.Tensor) else (output["loss"], output)
                _check_finite(loss, step, epoch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if hasattr(method, "after_step"):
                    method.after_step((step + 1) / total_steps)
                entry = {"step": step, "epoch": epoch, "loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]}
                entry.update({k: float(v) for k, v in logs.items() if k != "loss"})
                history.steps.append(entry)
                history.images_seen += len(index) * processes
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{entry['loss']:.3f}", refresh=False)  # shown at the next redraw
            history.seconds += time.perf_counter() - started
            if on_epoch_end is not None:
                method.eval()
                history.epochs.append({"epoch": epoch, **on_epoch_end(method, epoch)})
                method.train()
            if checkpoint is not None and this_rank == 0:
                save_atomically({
                    "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                    "order_generator": order_generator.get_state(),
                    "augment_generator": augment_generator.get_state().cpu(),
                    "history": history.state(), "epoch": epoch + 1, "metadata": metadata or {},
                }, checkpoint)
    bar.close()
    method.eval()
    return history
