"""A memory bank of one L2-normalised feature per training image (Wu, Xiong, Yu & Lin, 2018).

Instance discrimination (InstDisc) treats each of the n training images as its
own class and keeps the bank V = {v_i}, i = 1..n, of their features. Each
step reads the entries of the batch's images (the positives v_i^(t-1)) and M
entries drawn uniformly from the bank (the noise samples v'^(t-1)), and then
writes the fresh features f_i = v_i^(t) of the batch back into the bank.

Update convention. The bank is a running average pulled towards the fresh
feature, then projected back onto the unit sphere:

    v_i <- normalise(m * v_i + (1 - m) * f_i / ||f_i||),

with momentum m in [0, 1]: m = 0 overwrites the entry with the fresh feature,
m = 1 never changes it. This is the form of the paper's released code
(m = 0.5 there); MoCo's key-encoder update uses the same "m on the old value"
convention. The losses that read the bank are ``sslbook.losses.instdisc_nce_loss``,
``sslbook.losses.instdisc_softmax_loss`` (the exact softmax over every entry) and
``sslbook.losses.instdisc_proximal_term``.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_int


def check_momentum(momentum: float) -> None:
    """Stop with a clear message unless the bank momentum m is a number in [0, 1]."""
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(
            f"momentum m must be a number in [0, 1], got {momentum!r}; pass e.g. 0.5 "
            "(0 overwrites an entry with the fresh feature, 1 never changes it)"
        )


class MemoryBank(nn.Module):
    """One unit-length feature v_i per training image, stored in the buffer ``features`` (n_data, d).

    n_data: n, the number of training images (the bank has one row per image).
    dim: d, the feature dimension (128 in the paper).
    generator: draws the initial entries, random unit vectors (the paper's code
        starts from uniform noise; any random start works, since every entry is
        overwritten gradually from the first epoch on).

    The bank is a buffer, so it moves with ``.to(device)`` and is saved with the
    method's ``state_dict`` (checkpoints keep it).
    """

    def __init__(self, n_data: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        check_positive_int(n_data, "n_data", "len(train_data)")
        check_positive_int(dim, "dim", "128")
        self.register_buffer("features", F.normalize(torch.randn(n_data, dim, generator=generator), dim=1))

    @property
    def n_data(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    def check_indices(self, indices: torch.Tensor) -> None:
        """Stop with a clear message unless ``indices`` is a 1-D integer tensor of valid, distinct rows."""
        if not isinstance(indices, torch.Tensor) or indices.ndim != 1:
            shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise ValueError(f"indices must be a 1-D tensor of image positions, got {shape}; pass batch.indices")
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got dtype {indices.dtype}; pass batch.indices")
        if indices.numel() == 0:
            return
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= self.n_data:
            raise ValueError(
                f"bank index out of range: indices span [{low}, {high}] but the bank has rows 0..{self.n_data - 1}; "
                "build the bank with n_data = len(train_data) and pass positions in the training set"
            )
        if torch.unique(indices).numel() != indices.numel():
            raise ValueError(
                "indices must be distinct: one image appears twice in the batch, so its two updates would race; "
                "pass each image at most once per update"
            )

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The stored entries v_i^(t-1) (len(indices), d) of the given images (without gradient)."""
        self.check_indices(indices)
        return self.features[indices.to(self.features.device)]

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor, momentum: float) -> None:
        """v_i <- normalise(m v_i + (1 - m) f_i / ||f_i||) for every i in ``indices``.

        indices: (B,) distinct positions i of the images in the training set.
        features: (B, d) fresh features f_i = v_i^(t) of those images (detached here).
        momentum: m in [0, 1].

        The bank tensor is replaced, not written in place, so a loss computed from
        the old bank can still be back-propagated after the update.
        """
        check_momentum(momentum)
        self.check_indices(indices)
        if features.ndim != 2 or features.shape != (indices.numel(), self.dim):
            raise ValueError(
                f"features must have shape (len(indices), d) = ({indices.numel()}, {self.dim}), got "
                f"{tuple(features.shape)}; pass one fresh feature of dimension {self.dim} per index"
            )
        rows = indices.to(self.features.device)
        fresh = F.normalize(features.detach().to(self.features.dtype), dim=1)
        mixed = momentum * self.features[rows] + (1 - momentum) * fresh
        self.features = self.features.index_copy(0, rows, F.normalize(mixed, dim=1))

    def sample_negatives(self, n: int, m: int, generator: torch.Generator | None = None,
                         exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Indices (n, m) of M noise entries per sample, drawn uniformly with replacement (P_n = 1/n_data).

        n: the number of samples in the batch; m: M, noise samples per sample.
        generator: the source of randomness (its device is where the draw happens).
        exclude: optional (n,) bank rows, one per sample, that its draws must avoid (the sample's own
            entry): the draws are then uniform over the other n_data - 1 entries. The paper's code
            does not exclude it, which is harmless for n = 1.28 million images and M = 4096 (a draw hits
            the own entry with probability M/n = 0.3%) but not for a bank of a few thousand images.
        """
        check_positive_int(n, "n", "len(batch)")
        check_positive_int(m, "m", "4096")
        device = generator.device if generator is not None else self.features.device
        if exclude is None:
            return torch.randint(self.n_data, (n, m), generator=generator, device=device).to(self.features.device)
        if self.n_data < 2:
            raise ValueError("a bank of one entry has nothing left to draw after excluding it; use more data")
        self.check_indices(exclude)
        if exclude.numel() != n:
            raise ValueError(f"exclude must hold one row per sample, n = {n}, got {exclude.numel()}; pass batch.indices")
        drawn = torch.randint(self.n_data - 1, (n, m), generator=generator, device=device).to(self.features.device)
        excluded = exclude.to(self.features.device)[:, None]
        return drawn + (drawn >= excluded).long()  # skip over the excluded row: uniform over the others

