"""Losses of the pretext tasks (Part I): colorization's rebalanced cross-entropy and the counting loss.

Rotation, jigsaw, context prediction and Exemplar-CNN classify their free labels with the plain
cross-entropy (``F.cross_entropy``).
"""
import torch
import torch.nn.functional as F

from ..checks import check_pair as _check_pair, check_positive as _check_positive

__all__ = ['colorization_loss', 'counting_loss']


# Colorful image colorization (Zhang, Isola & Efros 2016), Z^ = softmax of the logits, Z the soft-encoded truth:
#   L_cl(Z^, Z) = - sum_{h,w} v(Z_{h,w}) sum_q Z_{h,w,q} log Z^_{h,w,q},   v(Z_{h,w}) = w_{q*},  q* = argmax_q Z_{h,w,q}
def colorization_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-rebalanced multinomial cross-entropy L_cl (Zhang, Isola & Efros, 2016, eq. 2).

    The paper sums over the pixels (h, w) of an image; here the loss is the mean over
    all N*H*W pixels, so its scale does not depend on the resolution or the batch size.

    Args:
        logits: the network's scores (N, Q, H, W); Z^ = softmax over the Q bins.
        targets: Z, the soft-encoded true colours (N, Q, H, W), e.g. from ``methods.colorization.encode_ab``.
        weights: w (Q,), the rebalancing weight of each bin (``methods.colorization.rebalancing_weights``);
            each pixel is weighted by v(Z_hw) = w at the bin q* = argmax_q Z_hwq.

    Returns:
        The scalar loss.
    """
    if logits.ndim != 4 or logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must both have shape (N, Q, H, W), got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}; encode the targets at the resolution of the predictions"
        )
    if weights.shape != (logits.shape[1],):
        raise ValueError(
            f"weights must have shape (Q,) = ({logits.shape[1]},), got {tuple(weights.shape)}; "
            "pass one rebalancing weight per ab bin"
        )
    if (weights < 0).any():
        raise ValueError("weights must be non-negative; build them with "
                         "sslbook.methods.colorization.rebalancing_weights")
    log_probabilities = F.log_softmax(logits.float(), dim=1)  # log Z^
    cross_entropy = -(targets * log_probabilities).sum(dim=1)  # - sum_q Z_hwq log Z^_hwq
    pixel_weights = weights.to(logits.device, log_probabilities.dtype)[targets.argmax(dim=1)]  # v(Z_hw)
    return (pixel_weights * cross_entropy).mean()


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
