"""Export a trained method's encoder, the network whose features the book evaluates, for use elsewhere.

``export_encoder`` reads a checkpoint written by ``python -m sslbook train`` (or a chapter's
``load_or_train``) and writes the weights of the method's ``encoder`` with metadata: the method,
profile and settings, the architecture and its options, and the preprocessing the encoder expects.
It needs the checkpoint only, no data: the encoder's weights are the checkpoint's ``encoder.*``
entries, and when they have the keys and shapes of the profile's backbone (``small_cnn`` or
``resnet18``), ``load_encoder`` rebuilds that backbone from the metadata alone. Other encoders
(a ViT, a lightness-only or two-view encoder) are method-specific: rebuild them with
``sslbook.runs.method_run`` and load the weights into its ``encoder``.

Two formats: safetensors (the default; ``pip install sslbook[export]``), whose metadata are strings
(nested values as JSON), or a PyTorch file ``{"state_dict": ..., "metadata": ...}`` that loads with
``torch.load(path, weights_only=True)``.

``to_torchvision_resnet18`` turns an exported CIFAR ResNet-18 (He et al. 2016, with a 3x3 stride-1
stem and no max-pool) into a ``torchvision.models.resnet18``. Our encoder normalises its inputs
itself; the torchvision model takes images already normalised with the metadata's mean and std.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from . import __version__, registry
from .networks import make_encoder
from .profiles import choose_profile
from .train import load_checkpoint, save_atomically

FORMATS = ("safetensors", "torch")
INPUT_SIZE = 32  # CIFAR-10, the data set of every profile
JSON_FIELDS = ("epoch", "settings", "architecture_options", "feature_dim", "preprocessing")  # JSON in safetensors
RESNET18_KEY_PREFIXES = (("stem.0.", "conv1."), ("stem.1.", "bn1."), ("stages.0.", "layer1."),
                         ("stages.1.", "layer2."), ("stages.2.", "layer3."), ("stages.3.", "layer4."))
RESNET18_FEATURES = 512
NORMALIZE_PREFIX = "normalize."  # the encoder's own input normalisation (mean and std buffers)


def encoder_weights(method_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` entries of a method's state dict, without the prefix, as contiguous CPU tensors
    (training stores convolution weights channels-last; safetensors writes contiguous tensors only)."""
    prefix = "encoder."
    weights = {key[len(prefix):]: tensor.detach().cpu().contiguous() for key, tensor in method_state.items()
               if key.startswith(prefix)}
    if not weights:
        raise ValueError("the checkpoint's method has no encoder.* weights; export checkpoints written by "
                         "`python -m sslbook train`")
    return weights


def _same_keys_and_shapes(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> bool:
    return weights.keys() == reference.keys() and all(weights[key].shape == reference[key].shape
                                                      for key in reference)


def export_metadata(checkpoint_state: dict, weights: dict[str, torch.Tensor]) -> dict:
    """What the exported file says about its weights: where they come from, which network they fit, and
    which images that network takes."""
    saved = checkpoint_state.get("metadata", {})
    missing = [key for key in ("method", "profile") if key not in saved]
    if missing:
        raise ValueError(f"the checkpoint does not say its {' or '.join(missing)}; export checkpoints written "
                         "by `python -m sslbook train`")
    entry = registry.get(saved["method"])
    profile = choose_profile(saved["profile"], verbose=False)
    backbone = profile.encoder()
    plain_backbone = _same_keys_and_shapes(weights, backbone.state_dict())
    preprocessing = {"input_size": INPUT_SIZE, "channels": "RGB", "value_range": [0.0, 1.0],
                     "normalised_by_the_encoder": True}
    if NORMALIZE_PREFIX + "mean" in weights:
        preprocessing.update({name: [round(value, 6) for value in weights[NORMALIZE_PREFIX + name].flatten().tolist()]
                              for name in ("mean", "std")})  # float32 digits beyond these are noise
    return {
        "format": "sslbook encoder", "sslbook_version": __version__, "method": entry.name,
        "profile": profile.name, "epoch": int(checkpoint_state["epoch"]),
        "fingerprint": saved.get("fingerprint", ""), "settings": saved.get("settings", {}),
        "architecture": profile.backbone if plain_backbone else f"{entry.name} encoder",
        "architecture_options": dict(profile.backbone_options) if plain_backbone else {},
        "feature_dim": backbone.feature_dim if plain_backbone else None,
        "preprocessing": preprocessing,
    }


def _safetensors_torch():
    try:
        import safetensors.torch
    except ModuleNotFoundError:
        raise ModuleNotFoundError("safetensors is not installed; install it with `pip install 'sslbook[export]'`, "
                                  "or write a PyTorch file with --format torch") from None
    return safetensors.torch


def export_encoder(checkpoint: str | Path, out: str | Path, file_format: str = "safetensors",
                   overwrite: bool = False) -> dict:
    """Write the encoder of ``checkpoint`` to ``out`` (atomically) and return the metadata written with it.

    An existing ``out`` is replaced only with ``overwrite``; ``out`` is never the checkpoint itself.
    """
    if file_format not in FORMATS:
        raise ValueError(f"unknown format {file_format!r}; choose one of {', '.join(FORMATS)}")
    checkpoint, out = Path(checkpoint), Path(out)
    state = load_checkpoint(checkpoint)
    if out.exists() and out.resolve() == checkpoint.resolve():
        raise ValueError(f"{out} is the checkpoint itself; name another output file")
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass --force (overwrite=True) to replace it, or name another file")
    weights = encoder_weights(state["method"])
    metadata = export_metadata(state, weights)
    if file_format == "torch":
        save_atomically({"state_dict": weights, "metadata": metadata}, out)
    else:
        save_file = _safetensors_torch().save_file
        text = {key: json.dumps(value) if key in JSON_FIELDS else value for key, value in metadata.items()}
        save_atomically(weights, out, save=lambda tensors, path: save_file(tensors, str(path), metadata=text))
    return metadata


def read_export(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights and metadata of a file written by ``export_encoder``, in either format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no exported encoder at {path}; write one with `python -m sslbook export`")
    with path.open("rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive; safetensors a JSON header
    if is_zip:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or set(saved) != {"state_dict", "metadata"}:
            raise ValueError(f"{path} is a PyTorch file but not an exported sslbook encoder; "
                             "write one with `python -m sslbook export --format torch`")
        return saved["state_dict"], saved["metadata"]
    safetensors_torch = _safetensors_torch()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            text = file.metadata() or {}
        weights = safetensors_torch.load_file(str(path))
    except Exception as error:
        raise ValueError(f"{path} is neither a safetensors nor a PyTorch file ({type(error).__name__}: {error}); "
                         "write one with `python -m sslbook export`") from None
    if text.get("format") != "sslbook encoder":
        raise ValueError(f"{path} is a safetensors file but not an exported sslbook encoder (no sslbook "
                         "metadata); write one with `python -m sslbook export`")
    metadata = {key: json.loads(value) if key in JSON_FIELDS else value for key, value in text.items()}
    return weights, metadata


def load_encoder(path: str | Path) -> nn.Module:
    """The exported encoder rebuilt from its metadata, with its weights, in evaluation mode.

    Only plain backbones (``small_cnn``, ``resnet18``) are rebuilt from the metadata alone.
    """
    weights, metadata = read_export(path)
    architecture = metadata["architecture"]
    if architecture.endswith(" encoder"):
        raise ValueError(
            f"{path} holds the method-specific encoder of {metadata['method']}, not a plain backbone; rebuild it "
            f"with sslbook.runs.method_run({metadata['method']!r}, profile, train_data, **settings).encoder "
            "and load the weights with its load_state_dict")
    encoder = make_encoder(architecture, **metadata["architecture_options"])
    encoder.load_state_dict(weights)
    return encoder.eval()


def torchvision_resnet18_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ``ResNetEncoder`` keys renamed to torchvision's ``resnet18``: ``stem.0`` -> ``conv1``,
    ``stem.1`` -> ``bn1``, ``stages.i`` -> ``layer{i+1}``; the input normalisation is left out."""
    renamed, unknown = {}, []
    for key, tensor in weights.items():
        if key.startswith(NORMALIZE_PREFIX):
            continue
        match = next(((ours, theirs) for ours, theirs in RESNET18_KEY_PREFIXES if key.startswith(ours)), None)
        if match is None:
            unknown.append(key)
        else:
            renamed[match[1] + key[len(match[0]):]] = tensor
    if unknown:
        raise ValueError(f"not CIFAR ResNet-18 weights (keys {', '.join(unknown[:3])}...); export a checkpoint "
                         "of the full profile, whose architecture is resnet18")
    return renamed


def to_torchvision_resnet18(weights: dict[str, torch.Tensor], num_classes: int | None = None) -> nn.Module:
    """torchvision's ``resnet18`` with the CIFAR stem (3x3 conv1 of stride 1, no max-pool) and the
    exported weights, in evaluation mode. ``num_classes=None``: ``fc`` is the identity and the model
    returns the 512 features; otherwise a fresh linear head of ``num_classes`` outputs (to fine-tune).

    It takes normalised images: ``(images - mean) / std`` with the metadata's preprocessing mean and std.
    """
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    model.load_state_dict(torchvision_resnet18_weights(weights))
    if num_classes is not None:
        model.fc = nn.Linear(RESNET18_FEATURES, num_classes)
    return model.eval()
