"""Losses without negatives: BYOL, Barlow Twins, and SimCLRv2's self-distillation.
"""
import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_pair as _check_pair
from ..checks import check_non_negative as _check_non_negative, check_positive as _check_positive

__all__ = ['byol_loss', 'cross_correlation', 'barlow_twins_loss', 'distillation_loss']


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
    _check_non_negative(lambd, "lambd", "5e-3")
    c = cross_correlation(z1, z2)
    off_diagonal = c.masked_fill(torch.eye(c.shape[0], dtype=torch.bool, device=c.device), 0)
    return (1 - torch.diagonal(c)).pow(2).sum() + lambd * off_diagonal.pow(2).sum()


# SimCLRv2 self-distillation (Chen et al. 2020b, equation 2):
#   L_distill = - sum_{x_i in D} [ sum_y P^T(y|x_i; tau) log P^S(y|x_i; tau) ]
#   P(y|x_i; tau) = exp(f^task(x_i)[y] / tau) / sum_{y'} exp(f^task(x_i)[y'] / tau)
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """SimCLRv2's distillation loss (Chen et al., 2020b), averaged over the images.

    student_logits: (N, C) f^task(x_i) of the student S; teacher_logits: (N, C) of the
    teacher T (the caller detaches them); temperature: tau, which softens both
    distributions. Returns the mean over i of the cross-entropy
    -sum_y P^T(y|x_i; tau) log P^S(y|x_i; tau).
    """
    for name, logits in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if logits.ndim != 2:
            raise ValueError(f"{name} must have shape (N, C), got {tuple(logits.shape)}; pass one row of "
                             "class scores per image")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}; score the same "
                         "images over the same classes with both networks")
    _check_positive(temperature, "temperature", "1.0")
    teacher_probabilities = torch.softmax(teacher_logits / temperature, dim=1)  # P^T(y|x_i; tau)
    student_log_probabilities = torch.log_softmax(student_logits / temperature, dim=1)  # log P^S(y|x_i; tau)
    return -(teacher_probabilities * student_log_probabilities).sum(dim=1).mean()
