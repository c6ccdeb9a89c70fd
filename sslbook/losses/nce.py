"""Noise-contrastive estimation and its descendants: NCE, InfoNCE, and instance discrimination.
"""
import math
import numbers

import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_ndim as _check_ndim, check_pair as _check_pair
from ..checks import check_positive as _check_positive, check_tau_plus as _check_tau_plus

__all__ = ['nce_loss', 'info_nce', 'instdisc_nce_loss']


# Noise contrastive estimation (Gutmann & Hyvarinen 2010):
#   L_NCE = - E_{x ~ p_data}[log f(x)] - E_{x~ ~ p_noise}[log(1 - f(x~))],   f = sigmoid(logit)
def nce_loss(logits_data: torch.Tensor, logits_noise: torch.Tensor) -> torch.Tensor:
    """Binary NCE loss (Gutmann & Hyvarinen, 2010).

    logits_data: logits of f(x) for samples x ~ p_data (any shape).
    logits_noise: logits of f(x~) for noise samples x~ ~ p_noise (any shape and size).
    Returns the mean over the data term plus the mean over the noise term.
    """
    for logits, name in ((logits_data, "logits_data"), (logits_noise, "logits_noise")):
        if logits.numel() == 0:
            raise ValueError(f"{name} is empty, so its expectation is undefined; pass at least one logit")
    # log(1 - sigmoid(a)) = logsigmoid(-a)
    return -F.logsigmoid(logits_data).mean() - F.logsigmoid(-logits_noise).mean()


# InfoNCE (van den Oord, Li & Vinyals 2018):
#   L_InfoNCE = - E[ log exp(f(x)^T f(x+)) / ( exp(f(x)^T f(x+)) + sum_{i=1..N} exp(f(x)^T f(x-_i)) ) ]
# with every score divided by a temperature.
def info_nce(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """InfoNCE loss of CPC (van den Oord, Li & Vinyals, 2018).

    query: (N, D) anchors f(x) (or the context c). positive: (N, D) f(x+).
    negatives: (N, K, D), K negatives f(x-_i) per query, or (K, D) shared by all
    queries. Scores are plain dot products divided by temperature (no
    normalisation: normalise the inputs first for cosine scores).
    Returns the mean over the N queries.
    """
    _check_pair(query, positive, "query", "positive")
    _check_positive(temperature, "temperature", "1.0")
    if negatives.ndim not in (2, 3) or negatives.shape[-1] != query.shape[1]:
        raise ValueError(
            f"negatives must have shape (N, K, D) or (K, D) with D={query.shape[1]}, got "
            f"{tuple(negatives.shape)}; stack the negatives along a K dimension"
        )
    if negatives.ndim == 3 and negatives.shape[0] != query.shape[0]:
        raise ValueError(
            f"per-query negatives must have N={query.shape[0]} rows like query, got "
            f"{negatives.shape[0]}; pass shape (N, K, D), or (K, D) to share them"
        )
    if negatives.shape[-2] == 0:
        raise ValueError("negatives holds K=0 negatives, so the loss is trivially 0; pass at least one negative")
    positive_scores = (query * positive).sum(dim=1, keepdim=True)
    if negatives.ndim == 2:
        negative_scores = query @ negatives.T
    else:
        negative_scores = torch.einsum("nd,nkd->nk", query, negatives)
    logits = torch.cat([positive_scores, negative_scores], dim=1) / temperature
    targets = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, targets)




# Instance discrimination with NCE (Wu, Xiong, Yu & Lin 2018):
#   P(i|v) = exp(v_i^T v / tau) / Z,   P_n = 1/n,   h(i, v) = P(i|v) / (P(i|v) + M P_n)
#   L_InstDisc = - E_{p_data}[ log h(i, v_i^{(t-1)}) - lambda ||v_i^{(t)} - v_i^{(t-1)}||_2^2 ]
#                - M E_{P_N}[ log(1 - h(i, v'^{(t-1)})) ]
def instdisc_nce_loss(
    scores_positive: torch.Tensor,
    scores_noise: torch.Tensor,
    n_data: int,
    normaliser: float | torch.Tensor,
) -> torch.Tensor:
    """NCE loss of instance discrimination (Wu, Xiong, Yu & Lin, 2018).

    scores_positive: (N,) scores v_i^T f_i / tau of each sample with its own
    memory-bank entry. scores_noise: (N, M) scores with M bank entries v' drawn
    uniformly (P_n = 1/n_data). n_data: n, the size of the memory bank.
    normaliser: Z > 0, the partition function (a Monte Carlo estimate,
    Z ~ n_data * mean exp(score)). The proximal term lambda ||v^(t) - v^(t-1)||^2
    is handled by the memory-bank code, not here. Returns the mean over N of
    -(log h(i, v_i) + sum over the M noise samples of log(1 - h(i, v'))).
    """
    _check_ndim(scores_positive, "scores_positive", 1, "(N,)")
    _check_ndim(scores_noise, "scores_noise", 2, "(N, M)")
    if scores_noise.shape[0] != scores_positive.shape[0] or scores_noise.shape[1] == 0:
        raise ValueError(
            f"scores_noise must have shape (N, M) with N={scores_positive.shape[0]} and M >= 1, got "
            f"{tuple(scores_noise.shape)}; pass M >= 1 noise scores per sample"
        )
    if isinstance(n_data, bool) or not isinstance(n_data, numbers.Integral) or n_data < 1:
        raise ValueError(f"n_data must be a positive int (the memory-bank size), got {n_data!r}; pass len(dataset)")
    if isinstance(normaliser, torch.Tensor):
        if normaliser.numel() != 1 or not bool(normaliser > 0):
            raise ValueError(f"normaliser Z must be a positive scalar, got {normaliser}; pass the estimate of Z")
        log_z = torch.log(normaliser.reshape(()))
    else:
        _check_positive(normaliser, "normaliser", "n_data * mean(exp(score))")
        log_z = math.log(normaliser)
    log_m_noise = math.log(scores_noise.shape[1] / n_data)  # log(M P_n)
    # log h = log P - log(P + M P_n);  log(1 - h) = log(M P_n) - log(P + M P_n)
    log_p_positive = scores_positive - log_z
    log_h_positive = log_p_positive - torch.logaddexp(log_p_positive, torch.full_like(log_p_positive, log_m_noise))
    log_p_noise = scores_noise - log_z
    log_not_h_noise = log_m_noise - torch.logaddexp(log_p_noise, torch.full_like(log_p_noise, log_m_noise))
    return -(log_h_positive + log_not_h_noise.sum(dim=1)).mean()
