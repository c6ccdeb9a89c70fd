"""Mixed precision for the method's networks only, by what the device computes natively.

Each network of a method (``networks_of``) runs under autocast, to bfloat16 or float16, and hands
back float32 (``autocast_networks``), so augmentations, pretext targets, memory banks and losses
always run in float32, on every device. ``choose_precision`` picks the dtype for a device.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def choose_precision(requested: str, device: torch.device | str, capability: tuple[int, int] | None = None) -> str:
    """The precision the networks train in: "bf16", "fp16" or "fp32".

    "auto" picks by the device: bf16 on a CUDA GPU that computes in bfloat16 natively (compute
    capability 8.0 and later: A100, H100, RTX 30 and 40; what ``torch.cuda.is_bf16_supported(
    including_emulation=False)`` checks), fp16 with loss scaling on older GPUs (V100, T4), fp32
    on the CPU. An explicit choice is kept, except bf16 on a GPU without it. ``capability``: the
    GPU's (major, minor), read from ``device`` when not given.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    device = torch.device(device)
    if device.type != "cuda":
        return "fp32" if requested == "auto" else requested
    major, minor = capability or torch.cuda.get_device_capability(device)
    native_bf16 = (major, minor) >= (8, 0)
    if requested == "auto":
        return "bf16" if native_bf16 else "fp16"
    if requested == "bf16" and not native_bf16:
        raise ValueError(f"this GPU (compute capability {major}.{minor}) has no native bfloat16 (8.0 and later do); "
                         "train in float16 with loss scaling: precision='fp16' or 'auto' (--precision fp16 or auto)")
    return requested


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
def autocast_networks(method: nn.Module, dtype: torch.dtype | None):
    """Inside, every network of ``method`` (``networks_of``) runs under autocast to ``dtype`` and returns float32.

    Only the networks, where the FLOPs are: augmentations, pretext targets, memory banks and losses
    run outside any autocast region, in float32, so they compute the same on every device (autocast's
    per-op rules differ between CPU and GPU). On exit the networks' own forward methods are restored.
    A network the method reaches other than through a direct submodule's forward (MAE's
    ``encoder.forward_tokens``, the autoencoders inside ``AutoencoderFeatures``) stays in float32:
    correct, only slower. ``dtype`` None: the networks run as they are.
    """
    patched = []
    try:
        for network in networks_of(method) if dtype is not None else []:
            device_type = next(network.parameters()).device.type

            def autocast_forward(*args, _forward=network.forward, _device_type=device_type, **kwargs):
                with torch.autocast(_device_type, dtype=dtype):
                    output = _forward(*args, **kwargs)
                return _to_float32(output)

            network.forward = autocast_forward
            patched.append(network)
        yield method
    finally:
        for network in patched:
            del network.forward


def bf16_networks(method: nn.Module, enabled: bool = True):
    """``autocast_networks`` in bfloat16 (not ``enabled``: in float32), as GPUs since the A100 train."""
    return autocast_networks(method, torch.bfloat16 if enabled else None)
