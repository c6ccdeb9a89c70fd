"""Loss functions of the book, one small pure function per equation.

Each function sits right after a comment block that shows its equation in the
notation of the survey the book follows (Zheng 2022). Every function returns a
scalar tensor on the device and in the dtype of its inputs; unless stated
otherwise it is the mean over anchors (samples) of the per-anchor loss.
"""

import math
import numbers

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Input checks shared by the losses below.
# ---------------------------------------------------------------------------


def _check_positive(value: float, name: str, example: str) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}; pass a positive {name} such as {example}")


def _check_tau_plus(tau_plus: float) -> None:
    if not 0 <= tau_plus < 1:
        raise ValueError(
            f"tau_plus (the class prior eta^+) must lie in [0, 1), got {tau_plus}; "
            "pass a probability such as 0.1 (0 recovers the biased loss)"
        )


def _check_ndim(x: torch.Tensor, name: str, ndim: int, layout: str) -> None:
    if x.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D tensor of shape {layout}, got shape {tuple(x.shape)}; "
            f"reshape it to {layout}"
        )


def _check_pair(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    _check_ndim(a, name_a, 2, "(N, D)")
    _check_ndim(b, name_b, 2, "(N, D)")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}; pass one row per sample in both, paired by row index"
        )


def _check_batch(n: int, minimum: int, reason: str) -> None:
    if n < minimum:
        raise ValueError(f"batch size N must be >= {minimum} {reason}, got N={n}; use a larger batch")


# ---------------------------------------------------------------------------
# SimCLR layout: 2N anchors z_1..z_2N, anchor i's positive is its other view.
# ---------------------------------------------------------------------------


def _simclr_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    _check_pair(z1, z2, "z1", "z2")
    _check_batch(z1.shape[0], 2, "so that every anchor has a negative")
    _check_positive(temperature, "temperature", "0.5")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    return z @ z.T / temperature


def _simclr_positive_index(n: int, device: torch.device) -> torch.Tensor:
    return torch.cat([torch.arange(n, 2 * n, device=device), torch.arange(0, n, device=device)])


def _simclr_positive_and_negatives(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive logits (2N,) and negative logits (2N, 2N-2) of the SimCLR layout."""
    logits = _simclr_logits(z1, z2, temperature)
    two_n = logits.shape[0]
    anchors = torch.arange(two_n, device=logits.device)
    positive_index = _simclr_positive_index(two_n // 2, logits.device)
    positive = logits[anchors, positive_index]
    is_negative = torch.ones_like(logits, dtype=torch.bool)
    is_negative[anchors, anchors] = False
    is_negative[anchors, positive_index] = False
    return positive, logits[is_negative].view(two_n, two_n - 2)


# SimCLR, NT-Xent (Chen et al. 2020):
#   L^{(i,j)}_SimCLR = -log  exp(sim(z_i, z_j)/tau) / sum_{k=1..2N, k != i} exp(sim(z_i, z_k)/tau)
#   sim(u, v) = u^T v / (||u|| ||v||);  averaged over all 2N anchors.
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss of SimCLR (Chen, Kornblith, Norouzi & Hinton, 2020).

    z1, z2: (N, D) projections z_i, z_j of the two augmented views (raw; they are
    L2-normalised here). Each of the 2N views is an anchor whose positive is the
    other view of the same image; the remaining 2N-2 views are its negatives.
    temperature: tau. Returns the mean over the 2N anchors.
    """
    logits = _simclr_logits(z1, z2, temperature)
    self_pairs = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_pairs, float("-inf"))  # k != i; -inf exists in every float dtype
    return F.cross_entropy(logits, _simclr_positive_index(z1.shape[0], logits.device))


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


# Alignment and uniformity (Wang & Isola 2020):
#   L_align(f; alpha) = E_{(x,y) ~ p_pos}[ ||f(x) - f(y)||_2^alpha ]
#   L_uniform(f; t)   = log E_{(x,y) ~ p_data}[ exp(-t ||f(x) - f(y)||_2^2) ]
def align_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 2) -> torch.Tensor:
    """Alignment loss (Wang & Isola, 2020).

    x, y: (N, D) already L2-normalised features f(x), f(y) of positive pairs,
    paired by row (not normalised here). alpha: the exponent alpha.
    Returns the mean over the N pairs.
    """
    _check_pair(x, y, "x", "y")
    _check_positive(alpha, "alpha", "2")
    return (x - y).norm(dim=1).pow(alpha).mean()


def uniform_loss(x: torch.Tensor, t: float = 2) -> torch.Tensor:
    """Uniformity loss (Wang & Isola, 2020).

    x: (N, D) already L2-normalised features f(x) (not normalised here).
    t: the scale t. The expectation runs over the N(N-1)/2 distinct pairs i < j.
    """
    _check_ndim(x, "x", 2, "(N, D)")
    _check_batch(x.shape[0], 2, "so that there is a pair of distinct samples")
    _check_positive(t, "t", "2")
    log_kernel = -t * torch.pdist(x).pow(2)
    return torch.logsumexp(log_kernel, dim=0) - math.log(log_kernel.numel())


# Debiased contrastive loss (Chuang et al. 2020), negatives u_1..u_N, positives v_1..v_M:
#   g(x, {u_i}, {v_i}) = max( 1/eta^- ( 1/N sum_i exp(f(x)^T f(u_i)) - eta^+/M sum_i exp(f(x)^T f(v_i)) ),
#                             exp(-1/tau) )
#   L_unbiased = E[ -log exp(f(x)^T f(x+)) / ( exp(f(x)^T f(x+)) + N g(x, {u_i}, {v_i}) ) ]
# with scores divided by tau, eta^+ = tau_plus, eta^- = 1 - tau_plus, and M = 1 (v = x+).
def _debiased_loss_from_logits(
    positive: torch.Tensor, log_negative_sum: torch.Tensor, n_negatives: int, temperature: float, tau_plus: float
) -> torch.Tensor:
    """Mean of -log(pos / (pos + N g)) in log space, from log sum_i exp(score(x, u_i))."""
    # N g = max((S - eta^+ N e^pos) / eta^-, N e^{-1/tau}) with S the negative sum;
    # S - eta^+ N e^pos = S (1 - e^r) with r = log(eta^+ N) + pos - log S.
    log_tau_plus = math.log(tau_plus) if tau_plus > 0 else -math.inf
    r = log_tau_plus + math.log(n_negatives) + positive - log_negative_sum
    remaining = -torch.expm1(r)
    has_mass = remaining > 0
    log_remaining = torch.where(has_mass, torch.log(torch.where(has_mass, remaining, 1.0)), -math.inf)
    log_estimate = log_negative_sum + log_remaining - math.log1p(-tau_plus)
    log_bound = torch.full_like(log_estimate, math.log(n_negatives) - 1 / temperature)
    log_n_g = torch.maximum(log_estimate, log_bound)
    return (torch.logaddexp(positive, log_n_g) - positive).mean()


def debiased_nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, tau_plus: float = 0.1
) -> torch.Tensor:
    """Debiased contrastive loss (Chuang, Robinson, Lin, Torralba & Jegelka, 2020).

    SimCLR layout of `nt_xent`: z1, z2 are the (N, D) projections f(x), f(x+) of
    the two views (normalised here); each of the 2N anchors x has the positive
    v = x+ (M = 1) and the 2N-2 other views as negatives u_i. temperature: tau;
    tau_plus: the class prior eta^+. The lower bound N e^{-1/tau} is the least
    value of sum_i exp(s_i/tau) for cosine similarities s_i >= -1. Equals
    `nt_xent` when tau_plus = 0 and the bound is inactive. Returns the mean
    over the 2N anchors.
    """
    _check_tau_plus(tau_plus)
    positive, negatives = _simclr_positive_and_negatives(z1, z2, temperature)
    n_negatives = negatives.shape[1]
    return _debiased_loss_from_logits(
        positive, torch.logsumexp(negatives, dim=1), n_negatives, temperature, tau_plus
    )


# Hard negative sampling (Robinson, Chuang, Sra & Jegelka 2021): in the debiased
# estimator each negative term exp(f(x)^T f(x-)) gets a weight that grows with the
# anchor-negative similarity; the survey writes it as
#   w(x-) = beta exp(f(x)^T f(x-)) / sum_{x-} exp(f(x)^T f(x-)).
# The paper's estimator puts the concentration beta in the exponent and normalises
# the weights to mean 1 over the N negatives, with s_i = f(x)^T f(u_i) / tau:
#   w_i = N exp(beta s_i) / sum_k exp(beta s_k),   sum_i w_i exp(s_i) replaces sum_i exp(s_i) in g.
def hard_negative_nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, tau_plus: float = 0.1, beta: float = 1.0
) -> torch.Tensor:
    """Hard-negative contrastive loss (Robinson, Chuang, Sra & Jegelka, 2021).

    Same layout and arguments as `debiased_nt_xent`; beta >= 0 is the
    concentration beta: negatives u_i are reweighted by exp(beta s_i)
    normalised to mean 1 over the 2N-2 negatives, with s_i = f(x)^T f(u_i)/tau.
    Equals `debiased_nt_xent` when beta = 0. Returns the mean over 2N anchors.
    """
    _check_tau_plus(tau_plus)
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta}; pass a concentration such as 1.0 (0 disables reweighting)")
    positive, negatives = _simclr_positive_and_negatives(z1, z2, temperature)
    n_negatives = negatives.shape[1]
    # log sum_i w_i e^{s_i} = logsumexp((1+beta) s) - (logsumexp(beta s) - log N)
    log_weighted_sum = (
        torch.logsumexp((1 + beta) * negatives, dim=1)
        - torch.logsumexp(beta * negatives, dim=1)
        + math.log(n_negatives)
    )
    return _debiased_loss_from_logits(positive, log_weighted_sum, n_negatives, temperature, tau_plus)


# InvaSpread (Ye, Zhang, Yuen & Chang 2019):
#   L = - sum_i log exp(f_i^T f^_i / tau) / sum_{k=1..N} exp(f_k^T f^_i / tau)
#       - sum_i sum_{j != i} log( 1 - exp(f_i^T f_j / tau) / sum_{k=1..N} exp(f_k^T f_j / tau) )
def invaspread_loss(f: torch.Tensor, f_hat: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Invariant and spreading instance feature loss (Ye, Zhang, Yuen & Chang, 2019).

    f: (N, D) features f_i of the instances; f_hat: (N, D) features f^_i of
    their augmented copies (both L2-normalised here). temperature: tau.
    The first term classifies f^_i as instance i among the f_k; the second says
    x_j is not classified as instance i for j != i, where P(i|x_j) normalises
    over all k including k = j (so P(i|x_j) <= 1/2 and log(1 - P) stays finite).
    Implementations differ in which features act as the classifier weights in
    the second term; this follows the equation above. Returns the sum over i
    divided by N.
    """
    _check_pair(f, f_hat, "f", "f_hat")
    _check_batch(f.shape[0], 2, "so that every instance has another instance to spread from")
    _check_positive(temperature, "temperature", "0.1")
    f = F.normalize(f, dim=1)
    f_hat = F.normalize(f_hat, dim=1)
    n = f.shape[0]
    # row i: scores f_k^T f^_i / tau over k; the target is k = i.
    invariance = F.cross_entropy(f_hat @ f.T / temperature, torch.arange(n, device=f.device), reduction="sum")
    # row j, column i: P(i | x_j).
    p_instance_given_other = torch.softmax(f @ f.T / temperature, dim=1)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=f.device)
    spreading = -torch.log1p(-p_instance_given_other[off_diagonal]).sum()
    return (invariance + spreading) / n


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


# CMC (Tian, Krishnan & Isola 2019), views i and j of the same sample, negatives v^k from the batch:
#   L^{(i,j)}_CMC = -log exp(f(v_i)^T f(v_j)/tau) / sum_k exp(f(v_i)^T f(v_j^k)/tau)
#                   -log exp(f(v_j)^T f(v_i)/tau) / sum_k exp(f(v_j)^T f(v_i^k)/tau)
def cmc_loss(features_view_i: torch.Tensor, features_view_j: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Two-sided contrastive multiview coding loss (Tian, Krishnan & Isola, 2019).

    features_view_i, features_view_j: (N, D) features f(v_i), f(v_j) of the
    same N samples in views i and j (L2-normalised here); the other samples of
    the batch, in the other view, are the negatives v^k. temperature: tau.
    Returns the mean over the batch of the i->j plus the j->i term.
    """
    _check_pair(features_view_i, features_view_j, "features_view_i", "features_view_j")
    _check_batch(features_view_i.shape[0], 2, "so that every sample has a negative")
    _check_positive(temperature, "temperature", "0.07")
    scores = F.normalize(features_view_i, dim=1) @ F.normalize(features_view_j, dim=1).T / temperature
    targets = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, targets) + F.cross_entropy(scores.T, targets)


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
