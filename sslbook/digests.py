"""Short content digests of tensors and of a module's weights: what fingerprints and caches key on."""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def tensor_digest(tensor: torch.Tensor) -> str:
    """16 hex digits of a tensor's bytes, dtype and shape."""
    shape = tuple(tensor.shape)
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest = hashlib.sha256(flat.view(torch.uint8).numpy().tobytes() + repr((flat.dtype, shape)).encode())
    return digest.hexdigest()[:16]


def state_digest(module: nn.Module) -> str:
    """16 hex digits of every weight and buffer of ``module``, by name."""
    state = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        state.update(key.encode() + tensor_digest(tensor).encode())
    return state.hexdigest()[:16]
