"""A training run's log, written as it goes: JSON lines, and TensorBoard event files when asked.

Each line of the JSON log is one object: ``{"kind": "step", "step", "epoch", "loss", "lr", ...}``
with the method's other logged values, or ``{"kind": "epoch", "epoch", "seconds", ...}`` with the
metrics of ``on_epoch_end``. Read it with ``[json.loads(line) for line in open(path)]``, or watch
it grow with ``tail -f``.
"""
from __future__ import annotations

import json
from pathlib import Path

from .paths import write_atomically

TENSORBOARD_MISSING = 'TensorBoard logs need the tensorboard package: pip install "sslbook[tensorboard]"'


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``, or an ImportError that says what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(TENSORBOARD_MISSING) from None
    return SummaryWriter


def _kept(line: str, steps_done: int, epochs_done: int) -> bool:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:  # the last line of a run killed while writing it
        return False
    return entry["step"] < steps_done if entry["kind"] == "step" else entry["epoch"] < epochs_done


class RunLog:
    """Appends step and epoch lines to ``path`` and, with ``tensorboard`` (a folder), scalars to TensorBoard.

    A run that starts after ``steps_done`` steps and ``epochs_done`` epochs (resumed from its
    checkpoint) first cuts the file back to those: what a stopped run logged after its last
    checkpoint is trained, and logged, again, so no step or epoch appears twice. TensorBoard
    hides those events likewise (``purge_step``); there every scalar's x-axis is the step.
    """

    def __init__(self, path: str | Path | None, tensorboard: str | Path | None = None, *, steps_done: int = 0,
                 epochs_done: int = 0):
        self.file = self.writer = None
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = path.read_text().splitlines() if path.is_file() else []
            kept = [line for line in lines if line and _kept(line, steps_done, epochs_done)]
            if len(kept) < len(lines):
                text = "".join(line + "\n" for line in kept)
                write_atomically(path, lambda temporary: temporary.write_text(text))
            self.file = path.open("a")
        if tensorboard is not None:
            self.writer = summary_writer_class()(str(tensorboard), purge_step=steps_done)

    def steps(self, entries: list[dict]) -> None:
        """One line per step (the history's entries), written through to the disk."""
        if self.file is not None and entries:
            self.file.write("".join(json.dumps({"kind": "step", **entry}) + "\n" for entry in entries))
            self.file.flush()
        for entry in entries if self.writer is not None else []:
            for key, value in entry.items():
                if key not in ("step", "epoch"):
                    self.writer.add_scalar(f"train/{key}", value, entry["step"])

    def epoch(self, entry: dict, steps_done: int) -> None:
        """One line for an epoch; in TensorBoard, its numbers at the step count where it ended."""
        if self.file is not None:
            self.file.write(json.dumps({"kind": "epoch", **entry}, default=str) + "\n")
            self.file.flush()
        if self.writer is not None:
            for key, value in entry.items():
                if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"epoch/{key}", value, steps_done)
            self.writer.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()
