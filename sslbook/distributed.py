"""Training on several processes (GPUs, or CPU processes with gloo) with DistributedDataParallel.

Launch any training command with ``torchrun --nproc_per_node=P``; the loop in ``sslbook.train``
splits each global batch across the processes. Losses that compare samples across the batch
(contrastive losses, Barlow Twins' cross-correlation) must see the *global* batch, so methods
pass their embeddings through :func:`gather`, which is the identity in a single process.

Why the gradient is right: every process computes the same loss L on the gathered global batch.
The backward of the gather sums, over processes, the gradients that reach each process's slice,
so a process receives P * dL/dz_local; DistributedDataParallel then averages parameter gradients
over the P processes, which leaves exactly dL/dtheta. Dropping the sum (returning only the local
gradient) is the classic bug: gradients then come out P times too small.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_environment() -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when not launched so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


class _GatherWithGradient(torch.autograd.Function):
    @staticmethod
    def forward(context, local: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(context, gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.contiguous()
        dist.all_reduce(gradient, op=dist.ReduceOp.SUM)
        return gradient.chunk(dist.get_world_size())[dist.get_rank()]


def gather(local: torch.Tensor) -> torch.Tensor:
    """Concatenate ``local`` (N_local, ...) from every process in rank order, keeping gradients.

    All processes must pass the same shape. In a single process this returns ``local`` itself.
    """
    if not is_distributed():
        return local
    return _GatherWithGradient.apply(local)


def synchronise_batch_norm(module: nn.Module) -> nn.Module:
    """Replace BatchNorm layers by SyncBatchNorm so that statistics cover the global batch."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module) if is_distributed() else module
