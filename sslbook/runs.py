"""A run: a method built from its settings, the training settings, and the data, under one fingerprint.

Each method module declares a ``MethodEntry``: its settings in every profile and how to build the
method from them. ``method_run`` builds the run a chapter trains and ``python -m sslbook train``
trains (the same call, so the two cannot drift apart), with any setting overridden by name.

A saved run is found by what it is. ``run_fingerprint`` reads a built method (its architecture,
every plain setting its modules hold, its initial weights and buffers), the training settings and
the data; ``load_or_train`` keeps each fingerprint in its own checkpoint file, so a changed
setting trains afresh and never loads another run's weights.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .budget import EpochBudget, epochs_that_fit, step_flops_per_image
from .data import ImageData
from .digests import state_digest, tensor_digest
from .paths import CHECKPOINTS_ENV, checkpoints_dir  # noqa: F401 (CHECKPOINTS_ENV: for the tests)
from .profiles import Profile
from .train import History, TrainConfig, train

TRAINING_FIELDS = tuple(field.name for field in fields(TrainConfig))
NOT_FINGERPRINTED = ("compile",)  # how fast a run goes, not what it learns
FAMILY_OF_FOLDER = {"pretext": "pretext tasks", "contrastive": "contrastive", "generative": "generative"}
FAMILIES = (*FAMILY_OF_FOLDER.values(), "reference")  # the book's parts, then the supervised reference


def per_profile(shared: dict | None = None, *, quick: dict | None = None, full: dict | None = None) -> dict:
    """Settings for each profile: ``shared`` by all, then what ``quick`` and ``full`` set apart
    (the ``gpu`` profile takes ``full``'s, for fewer epochs)."""
    shared = shared or {}
    return {"quick": {**shared, **(quick or {})}, "full": {**shared, **(full or {})}}


def extended(settings: dict[str, dict], **shared) -> dict[str, dict]:
    """Another method's settings per profile, with ``shared`` added in every profile."""
    return {profile: {**values, **shared} for profile, values in settings.items()}


@dataclass(frozen=True)
class Published:
    """A result reported by a paper or another library: other data, architecture or budget than the book's."""

    source: str  # who reports it (the chapter's text cites it)
    metric: str  # what was measured: "kNN", "linear probe", "VOC 2007 detection mAP" ... (in %)
    value: float
    setting: str  # the data, backbone and budget it was measured with
    cite: str  # its key in references.bib: the chapter's reference section cites it


PUBLISHED_FILE = Path(__file__).with_name("published.json")  # every method's published rows, with sources


@functools.cache
def published_results() -> dict[str, tuple[Published, ...]]:
    """The published rows of ``published.json``, by method name."""
    rows = json.loads(PUBLISHED_FILE.read_text())
    return {name: tuple(Published(**row) for row in listed) for name, listed in rows.items() if name != "about"}


@dataclass(frozen=True)
class MethodEntry:
    """Everything the book and the command line need to know about one method, kept in its module."""

    name: str  # as on the command line and in results files
    title: str  # in tables and plots
    chapter: str  # the notebook that trains it, from the repository root; its folder names the family
    order: int  # position in the book, within the family
    summary: str  # one line for `python -m sslbook list`
    build: Callable[..., nn.Module]  # build(profile, train_data, **settings) -> method
    settings: dict[str, dict]  # profile name -> keyword arguments of ``build``
    training: dict[str, dict] = dataclasses.field(default_factory=dict)  # profile -> TrainConfig fields

    @property
    def published(self) -> tuple[Published, ...]:
        """Reference numbers from the literature (``published.json``), shown in the chapter."""
        return published_results().get(self.name, ())

    @property
    def family(self) -> str:
        """The book's part the chapter stands in (``FAMILIES``): its folder under ``book/``."""
        folder = Path(self.chapter).parent.name
        return FAMILY_OF_FOLDER.get(folder, "reference")

    def settings_in(self, profile: Profile) -> dict:
        return dict(self.settings.get(profile.settings_of, {}))

    def training_in(self, profile: Profile) -> dict:
        return dict(self.training.get(profile.settings_of, {}))


@dataclass
class Run:
    """A built method and its training settings: what ``load_or_train`` trains or loads."""

    name: str
    method: nn.Module
    config: TrainConfig
    settings: dict  # the keyword arguments the method was built with
    profile: Profile
    data: ImageData
    fingerprint: str  # of the method as built, before any training (what names its checkpoint)
    description: dict[str, str]  # what the fingerprint covers, item by item
    budget: EpochBudget | None = None  # how the epochs were sized, in a profile that sizes them

    @property
    def encoder(self) -> nn.Module:
        """The network whose features are evaluated: every method's ``encoder``."""
        return self.method.encoder

    def load_or_train(self, **options) -> History:
        return load_or_train(self.method, self.data, self.config, self.name, self.profile,
                             metadata={"settings": self.settings}, identity=(self.fingerprint, self.description),
                             **options)

    def settings_table(self):
        """The run's settings as a Markdown table: the method's, then the training loop's."""
        from IPython.display import Markdown

        lines = ["| setting | value |", "|---|---|"]
        lines += [f"| {key} | `{value!r}` |" for key, value in self.settings.items()]
        lines += [f"| training: {key} | `{value!r}` |" for key, value in dataclasses.asdict(self.config).items()
                  if key not in NOT_FINGERPRINTED]
        return Markdown("\n".join(lines))


def method_run(name: str, profile: Profile, train_data: ImageData, **overrides) -> Run:
    """The run of method ``name`` as its module sets it for ``profile``, with ``overrides`` by name.

    An override is either a setting of the method (an argument of its ``build``) or a field of
    ``TrainConfig`` (epochs, batch_size, lr, seed, ...). The weights are initialised from the
    training seed, so the same settings always build the same run.
    """
    from .registry import get

    entry = get(name)
    settings, training = entry.settings_in(profile), entry.training_in(profile)
    unknown = sorted(set(overrides) - set(settings) - set(TRAINING_FIELDS))
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a setting of {name} ({', '.join(settings) or 'none'}) "
                         f"nor of the training loop ({', '.join(TRAINING_FIELDS)}); check the spelling")
    settings.update({key: value for key, value in overrides.items() if key in settings})
    training.update({key: value for key, value in overrides.items() if key in TRAINING_FIELDS})
    config = profile.train_config(**training)
    torch.manual_seed(config.seed)
    method = entry.build(profile, train_data, **settings)
    budget = None
    if profile.sized and "epochs" not in overrides:
        config, budget = sized_to_budget(name, method, config, profile, train_data)
    return Run(name, method, config, settings, profile, train_data, *run_fingerprint(method, config, train_data),
               budget=budget)


def sized_to_budget(name: str, method: nn.Module, config: TrainConfig, profile: Profile,
                    train_data: ImageData) -> tuple[TrainConfig, EpochBudget]:
    """``config`` with the epochs that fit the budget (``sslbook.budget``), said in one line, the
    warm-up shortened to a tenth of them where the recipe's is longer; and the estimate."""
    with torch.random.fork_rng(devices=[profile.device] if profile.device.type == "cuda" else []):
        flops = step_flops_per_image(method, train_data, profile.device)
    gpu_name = torch.cuda.get_device_name(profile.device) if profile.device.type == "cuda" else None
    budget = epochs_that_fit(flops, len(train_data), most=config.epochs, gpu_name=gpu_name)
    print(budget.describe(name))
    return dataclasses.replace(config, epochs=budget.epochs,
                               warmup_epochs=min(config.warmup_epochs, budget.epochs / 10)), budget


def _plain(value):
    """A value as fingerprint text, or None for what is not a setting (tensors are hashed apart)."""
    if isinstance(value, (bool, int, float, str, type(None), torch.dtype)):
        return repr(value)
    if isinstance(value, (tuple, list)) and all(_plain(item) is not None for item in value):
        return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr(value)
    return None


def describe_run(method: nn.Module, config: TrainConfig, data: ImageData) -> dict[str, str]:
    """What defines a run, one line per item: the method's settings, the training settings, the data."""
    description = {}
    for prefix, module in method.named_modules():
        if type(module).__module__.startswith("torch."):
            continue  # PyTorch's own layers: their settings are in the architecture's text
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            text = tensor_digest(value) if isinstance(value, torch.Tensor) else _plain(value)
            if text is not None:
                description[f"{prefix}.{key}" if prefix else key] = text
    description["architecture"] = hashlib.sha256(repr(method).encode()).hexdigest()[:16]
    description["initial weights and buffers"] = state_digest(method)
    for key, value in dataclasses.asdict(config).items():
        if key not in NOT_FINGERPRINTED:
            description[f"training: {key}"] = repr(value)
    description["data"] = (f"{len(data)} images of {tuple(data.images.shape[1:])}, classes {data.classes}, "
                           f"images {tensor_digest(data.images)}, labels {tensor_digest(data.labels)}")
    return description


def run_fingerprint(method: nn.Module, config: TrainConfig, data: ImageData) -> tuple[str, dict[str, str]]:
    """A short hash of ``describe_run``, and the description itself (to say what differs)."""
    description = describe_run(method, config, data)
    digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]
    return digest, description


def differences(saved: dict[str, str], now: dict[str, str]) -> str:
    """The items in which two run descriptions differ, as one readable line."""
    keys = sorted(set(saved) | set(now), key=lambda key: (key.startswith("training"), key))
    changed = [f"{key} (saved {saved.get(key, 'absent')}, now {now.get(key, 'absent')})"
               for key in keys if saved.get(key) != now.get(key)]
    return "; ".join(changed) or "nothing that is recorded"


def checkpoint_path(name: str, profile: Profile, fingerprint: str) -> Path:
    """``<name>-<profile>-<fingerprint>.pt``: one file per set of settings."""
    return checkpoints_dir() / f"{name}-{profile.name}-{fingerprint}.pt"


def load_or_train(method: nn.Module, data: ImageData, config: TrainConfig, name: str, profile: Profile,
                  metadata: dict | None = None, identity: tuple[str, dict] | None = None, **options) -> History:
    """Train ``method``, or load the saved run with exactly these settings (its fingerprint).

    A run with other settings lives in another file and is never loaded here; delete a file to
    train that run again. ``identity``: the fingerprint and description of ``method`` as built,
    when they are known already (they must be taken before training changes the weights).
    """
    fingerprint, description = identity or run_fingerprint(method, config, data)
    path = checkpoint_path(name, profile, fingerprint)
    if path.exists():
        print(f"Loading the saved run {path.name} (the same method, training settings and data); "
              "delete it to train again.")
    else:
        print(f"No saved run of {name} with these settings: training, then saving {path.name}.")
    metadata = {**(metadata or {}), "method": name, "profile": profile.name, "fingerprint": fingerprint,
                "description": description}
    return train(method, data, config, device=profile.device, checkpoint=path, description=name,
                 metadata=metadata, **options)
