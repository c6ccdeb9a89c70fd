"""Losses of the pretext tasks (Part I).
"""
import math
import numbers

import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_ndim as _check_ndim, check_pair as _check_pair
from ..checks import check_positive as _check_positive, check_tau_plus as _check_tau_plus

__all__ = ['counting_loss']


# Learning to count (Noroozi, Pirsiavash & Favaro 2017):
#   L = ||phi(D o x) - sum_{i=1..4} phi(T_i o x)||_2^2 + max(0, c - ||phi(D o y) - sum_{i=1..4} phi(T_i o x)||_2^2)
def counting_loss(
    counts_downsampled: torch.Tensor,
    counts_tiles: torch.Tensor,
    counts_other_downsampled: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Counting loss (Noroozi, Pirsiavash & Favaro, 2017).

    counts_downsampled: (N, K) counts phi(D o x) of the downsampled image x.
    counts_tiles: (N, 4, K) counts phi(T_i o x) of its four 2x2 tiles.
    counts_other_downsampled: (N, K) counts phi(D o y) of another image y.
    margin: c > 0. Returns the mean over the batch.
    """
    _check_pair(counts_downsampled, counts_other_downsampled, "counts_downsampled", "counts_other_downsampled")
    n, k = counts_downsampled.shape
    if counts_tiles.shape != (n, 4, k):
        raise ValueError(
            f"counts_tiles must have shape (N, 4, K) = ({n}, 4, {k}), got {tuple(counts_tiles.shape)}; "
            "stack the counts of the four tiles along dimension 1"
        )
    _check_positive(margin, "margin", "10.0")
    tiles_total = counts_tiles.sum(dim=1)
    same_image = (counts_downsampled - tiles_total).pow(2).sum(dim=1)
    other_image = (counts_other_downsampled - tiles_total).pow(2).sum(dim=1)
    return (same_image + F.relu(margin - other_image)).mean()
