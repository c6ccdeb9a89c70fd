"""Losses without negatives: BYOL and Barlow Twins.
"""
import math
import numbers

import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_ndim as _check_ndim, check_pair as _check_pair
from ..checks import check_positive as _check_positive, check_tau_plus as _check_tau_plus

__all__ = ['byol_loss', 'cross_correlation', 'barlow_twins_loss']


# BYOL (Grill et al. 2020), for one direction of the symmetrised loss:
#   L = 2 - 2 <q_theta(z_theta), z'_xi> / (||q_theta(z_theta)||_2 ||z'_xi||_2)
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL regression loss (Grill et al., 2020), one direction.

    p: (N, D) online predictions q_theta(z_theta); z: (N, D) target projections
    z'_xi of the other view. The caller detaches z (the target network gets no
    gradient); this function does not. The method adds the loss with the views
    swapped. Returns the mean over the N samples.
    """
    _check_pair(p, z, "p", "z")
    return 2 - 2 * (F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(dim=1).mean()


# Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny 2021):
#   C_ij = sum_b z^A_{b,i} z^B_{b,j} / ( sqrt(sum_b (z^A_{b,i})^2) sqrt(sum_b (z^B_{b,j})^2) )
#   L_BT = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2
# with each dimension centred over the batch b first.
def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Cross-correlation matrix C (D, D) of Barlow Twins (Zbontar et al., 2021).

    z1, z2: (N, D) embeddings z^A, z^B of the two views. Each dimension is
    standardised over the batch (mean 0, population std 1), so
    C_ij = sum_b z^A_{b,i} z^B_{b,j} / N. A dimension constant over the batch
    has no correlation (0/0) and gives NaN.
    """
    _check_pair(z1, z2, "z1", "z2")
    _check_batch(z1.shape[0], 2, "to standardise each dimension over the batch")

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(dim=0)) / z.std(dim=0, correction=0)

    return standardise(z1).T @ standardise(z2) / z1.shape[0]


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3) -> torch.Tensor:
    """Barlow Twins redundancy-reduction loss (Zbontar et al., 2021).

    z1, z2: (N, D) embeddings z^A, z^B; lambd: the off-diagonal weight lambda.
    Returns the sum over the entries of C (not a mean), as in the paper.
    """
    if not lambd >= 0:
        raise ValueError(f"lambd must be >= 0, got {lambd}; pass a small weight such as 5e-3")
    c = cross_correlation(z1, z2)
    off_diagonal = c.masked_fill(torch.eye(c.shape[0], dtype=torch.bool, device=c.device), 0)
    return (1 - torch.diagonal(c)).pow(2).sum() + lambd * off_diagonal.pow(2).sum()
