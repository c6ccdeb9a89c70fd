"""Noise-contrastive estimation and its descendants: NCE, InfoNCE (CPC's too), and instance discrimination.
"""
import math
import numbers

import torch
import torch.nn.functional as F

from ..checks import check_ndim as _check_ndim, check_positive as _check_positive

__all__ = ['nce_loss', 'nce_logit', 'info_nce', 'instdisc_nce_loss', 'instdisc_softmax_loss',
           'instdisc_proximal_term']


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


# NCE's logit (Gutmann & Hyvarinen 2010): h(x) = sigmoid(G(x)) is the probability that x came
# from the data rather than the noise, with
#   G(x) = log p_m(x; theta) - log(nu p_n(x)),   nu = (noise samples) / (data samples).
def nce_logit(log_model: torch.Tensor, log_noise: torch.Tensor, nu: float = 1.0) -> torch.Tensor:
    """The logit G(x) of NCE's logistic regression (Gutmann & Hyvarinen, 2010).

    log_model: log p_m(x; theta), the model's (unnormalised) log-density at x.
    log_noise: log p_n(x), the noise log-density at the same points (same shape).
    nu: the ratio nu of noise to data samples. Feed G of the data points and of
    the noise points to ``nce_loss`` (which weighs the data and noise terms
    equally, the objective of Gutmann & Hyvarinen for nu = 1).
    """
    if log_model.shape != log_noise.shape:
        raise ValueError(
            f"log_model and log_noise must have the same shape, got {tuple(log_model.shape)} and "
            f"{tuple(log_noise.shape)}; evaluate both densities at the same points"
        )
    if not nu > 0:
        raise ValueError(f"nu must be > 0, got {nu}; pass the ratio of noise to data samples, such as 1.0")
    return log_model - log_noise - math.log(nu)


# InfoNCE (van den Oord, Li & Vinyals 2018):
#   L_InfoNCE = - E[ log exp(f(x)^T f(x+)) / ( exp(f(x)^T f(x+)) + sum_{i=1..N} exp(f(x)^T f(x-_i)) ) ]
# with every score divided by a temperature. CPC's candidate set: the negatives of a prediction are the
# true futures of the other predictions of its set.
def info_nce(
    query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None, temperature: float = 1.0
) -> torch.Tensor:
    """InfoNCE loss of CPC (van den Oord, Li & Vinyals, 2018).

    query: (N, D) anchors f(x) (CPC: the predictions W_k c_t). positive: (N, D) f(x+) (CPC: the true
    futures z_{t+k}). negatives: (N, K, D), K negatives f(x-_i) per query; (K, D), shared by all
    queries; or None, CPC's candidate set: the negatives of query a are the positives of the other
    N-1 queries. query and positive may have leading dimensions, (G, N, D): G separate sets of N
    (negatives then (G, N, K, D), (K, D) or None). Scores are plain dot products divided by
    temperature (no normalisation: normalise the inputs first for cosine scores).
    Returns the mean over all queries.
    """
    if query.ndim < 2 or query.shape != positive.shape:
        raise ValueError(
            f"query and positive must have the same shape (N, D) or (G, N, D), got {tuple(query.shape)} and "
            f"{tuple(positive.shape)}; pass one row per query in both, paired by row index"
        )
    _check_positive(temperature, "temperature", "1.0")
    n_queries = query.shape[-2]
    if negatives is None:
        if n_queries < 2:
            raise ValueError(f"without negatives, the other queries' positives are the negatives: need N >= 2 "
                             f"queries, got N={n_queries}; pass more rows or the negatives")
        logits = query @ positive.transpose(-1, -2) / temperature  # the positive of query a in column a
        targets = torch.arange(n_queries, device=query.device).expand(logits.shape[:-1])
        return F.cross_entropy(logits.flatten(0, -2), targets.flatten())
    per_query = negatives.ndim == query.ndim + 1
    if negatives.ndim != 2 and not per_query or negatives.shape[-1] != query.shape[-1]:
        raise ValueError(
            f"negatives must have shape (N, K, D) or (K, D) with D={query.shape[-1]}, got "
            f"{tuple(negatives.shape)}; stack the negatives along a K dimension"
        )
    if per_query and negatives.shape[:-2] != query.shape[:-1]:
        raise ValueError(
            f"per-query negatives must have N={n_queries} rows like query, got "
            f"{negatives.shape[-3]}; pass shape (N, K, D), or (K, D) to share them"
        )
    if negatives.shape[-2] == 0:
        raise ValueError("negatives holds K=0 negatives, so the loss is trivially 0; pass at least one negative")
    positive_scores = (query * positive).sum(dim=-1, keepdim=True)
    if per_query:
        negative_scores = torch.einsum("...nd,...nkd->...nk", query, negatives)
    else:
        negative_scores = query @ negatives.T
    logits = torch.cat([positive_scores, negative_scores], dim=-1) / temperature
    targets = torch.zeros(logits.shape[:-1], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten())


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
    is ``instdisc_proximal_term``, added by the method. Returns the mean over N of
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


# Instance discrimination with the exact non-parametric softmax (Wu, Xiong, Yu & Lin 2018, eq. 2):
#   P(i|v) = exp(v_i^T v / tau) / sum_{j=1..n} exp(v_j^T v / tau),   L = - E[ log P(i|v) ]
def instdisc_softmax_loss(scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Non-parametric softmax loss of instance discrimination (Wu, Xiong, Yu & Lin, 2018, eq. 2).

    scores: (N, n) scores v_j^T v / tau of each sample's feature v with all n memory-bank entries v_j.
    indices: (N,) the row i of each sample's own entry. Returns the mean over N of -log P(i|v).
    The denominator sums over the whole bank, n scores per sample: the cost that NCE
    (``instdisc_nce_loss``) replaces with M noise samples and an estimate of Z.
    """
    _check_ndim(scores, "scores", 2, "(N, n)")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores must have shape (N, n) with N >= 1 samples and n >= 1 bank entries, got "
                         f"{tuple(scores.shape)}; pass the scores of the batch with the whole bank")
    if indices.shape != scores.shape[:1] or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be an integer tensor of shape (N,) = ({scores.shape[0]},), got shape "
                         f"{tuple(indices.shape)} and dtype {indices.dtype}; pass batch.indices")
    if int(indices.min()) < 0 or int(indices.max()) >= scores.shape[1]:
        raise ValueError(f"indices must be bank rows 0..{scores.shape[1] - 1}, got values in "
                         f"[{int(indices.min())}, {int(indices.max())}]; pass the positions of the images in the bank")
    return F.cross_entropy(scores, indices.long())


# InstDisc's proximal regularisation (Wu, Xiong, Yu & Lin 2018), the lambda term of L_InstDisc above:
#   lambda ||v_i^{(t)} - v_i^{(t-1)}||_2^2
def instdisc_proximal_term(fresh: torch.Tensor, stored: torch.Tensor, lambd: float) -> torch.Tensor:
    """Proximal regularisation of InstDisc (Wu, Xiong, Yu & Lin, 2018), the mean over i.

    fresh: (B, d) the features v_i^(t) computed now (gradient flows through them).
    stored: (B, d) their memory-bank entries v_i^(t-1) from the previous visit (detached here).
    lambd: lambda >= 0, the weight; 0 switches the term off.
    The term keeps each image's feature from jumping between visits, which damps
    the oscillation of a task with a single example per class.
    """
    if isinstance(lambd, bool) or not isinstance(lambd, numbers.Real) or not lambd >= 0:
        raise ValueError(f"lambd must be a number >= 0, got {lambd!r}; pass e.g. 30.0, or 0 to switch the term off")
    if fresh.ndim != 2 or fresh.shape != stored.shape:
        raise ValueError(
            f"fresh and stored must both have shape (B, d), got {tuple(fresh.shape)} and {tuple(stored.shape)}; "
            "pass the fresh features and bank.lookup(indices) of the same images"
        )
    return lambd * (fresh - stored.detach()).pow(2).sum(dim=1).mean()
