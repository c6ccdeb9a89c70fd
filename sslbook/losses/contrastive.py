"""Contrastive losses on two views of a batch: NT-Xent, alignment and uniformity, the debiased and
hard-negative estimators, InvaSpread and CMC (with two views or more).
"""
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..checks import check_batch_size as _check_batch, check_ndim as _check_ndim, check_pair as _check_pair
from ..checks import check_non_negative as _check_non_negative, check_positive as _check_positive
from ..checks import check_tau_plus as _check_tau_plus

__all__ = ["nt_xent", "align_loss", "uniform_loss", "debiased_nt_xent", "hard_negative_nt_xent", "invaspread_loss",
           "cmc_loss", "cmc_multiview_loss", "CMC_GRAPHS", "simclr_negative_mask", "false_negative_mask", "oracle_nt_xent", "hard_negative_weights"]


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
    own_pair = torch.stack([anchors % (two_n // 2), anchors % (two_n // 2) + two_n // 2], dim=1)  # i and its positive
    return positive, logits.gather(1, _kept_columns(own_pair, two_n))


def _kept_columns(skipped: torch.Tensor, n_columns: int) -> torch.Tensor:
    """Per row, the columns 0..n_columns-1 left once its m skipped columns (R, m), ascending, are taken out.

    Returns (R, n_columns - m) indices in ascending order, for ``gather``: the row-major order of
    boolean-mask indexing, without its nonzero, whose output size makes a GPU host wait for the device.
    """
    columns = torch.arange(n_columns - skipped.shape[1], device=skipped.device).expand(skipped.shape[0], -1)
    for column in skipped.unbind(dim=1):
        columns = columns + (columns >= column.unsqueeze(1))
    return columns


def simclr_negative_mask(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(2N, 2N) bool in the SimCLR layout: view k is a negative of anchor i (k is neither i nor its positive)."""
    anchors = torch.arange(2 * n, device=device)
    is_negative = torch.ones(2 * n, 2 * n, dtype=torch.bool, device=device)
    is_negative[anchors, anchors] = False
    is_negative[anchors, _simclr_positive_index(n, device)] = False
    return is_negative


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
    _check_non_negative(beta, "beta", "1.0 (0 disables reweighting)")
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
    others = _kept_columns(torch.arange(n, device=f.device).unsqueeze(1), n)  # row j: every i != j
    spreading = -torch.log1p(-p_instance_given_other.gather(1, others)).sum()
    return (invariance + spreading) / n




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


# CMC with M views V_1 .. V_M (Tian, Krishnan & Isola 2019, section 3.3), V_1 the core view:
#   core view:  L_C = sum_{j=2}^{M} L(V_1, V_j)
#   full graph: L_F = sum_{1 <= i < j <= M} L(V_i, V_j)
# with L(V_i, V_j) the two-sided L^{(i,j)}_CMC above; for M = 2 both are L(V_1, V_2).
CMC_GRAPHS = ("core", "full")


def cmc_multiview_loss(features: Sequence[torch.Tensor], temperature: float = 0.07,
                       graph: str = "core") -> torch.Tensor:
    """CMC's loss over M >= 2 views (Tian, Krishnan & Isola, 2019): ``cmc_loss`` summed over pairs.

    features: M tensors (N, D), f(V_1) .. f(V_M) of the same N samples, the first
    the core view. graph: "core" pairs V_1 with every other view (M - 1 terms);
    "full" takes every pair of views (M(M - 1)/2 terms). temperature: tau.
    """
    if graph not in CMC_GRAPHS:
        raise ValueError(f"graph must be one of {CMC_GRAPHS}, got {graph!r}; pass 'core' or 'full'")
    if len(features) < 2:
        raise ValueError(f"CMC needs at least 2 views, got {len(features)}; pass one feature tensor per view")
    pairs = ([(0, j) for j in range(1, len(features))] if graph == "core"
             else list(itertools.combinations(range(len(features)), 2)))
    return sum(cmc_loss(features[i], features[j], temperature) for i, j in pairs)


# ---------------------------------------------------------------------------
# Looking inside the losses on the SimCLR layout, with labels (analysis only, never training).
# ---------------------------------------------------------------------------


def _check_labels(labels: torch.Tensor, batch_size: int | None = None) -> None:
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor of class indices, got dtype {labels.dtype} and shape "
                         f"{tuple(labels.shape)}; pass one int64 class index per image")
    if batch_size is not None and len(labels) != batch_size:
        raise ValueError(f"labels must hold one class per image, B={batch_size}, got {len(labels)}; "
                         "pass the labels of the images behind z1 and z2")


def false_negative_mask(labels: torch.Tensor) -> torch.Tensor:
    """Which negatives are false negatives (Chuang, Robinson, Lin, Torralba & Jegelka, 2020).

    labels: (B,) class of each image of the batch (used for analysis only, never
    for self-supervised training). Returns a (2B, 2B) bool tensor in the SimCLR
    layout: entry (a, k) is True when view k is one of anchor a's 2B-2 negatives
    u_i and its image has the same class as a's, so that u_i is in fact drawn
    from p_x^+ rather than from the true negative distribution p_x^-.
    """
    _check_labels(labels)
    both_views = torch.cat([labels, labels])
    same_class = both_views[:, None] == both_views[None, :]
    return same_class & simclr_negative_mask(len(labels), labels.device)


# Oracle (Chuang et al. 2020): the unbiased objective when p_x^- is known, here
# from the labels. With N = 2B-2 negatives and T_a the true negatives of anchor a,
#   L_oracle = -log exp(f(x)^T f(x+)) / ( exp(f(x)^T f(x+)) + N * 1/|T_a| sum_{u in T_a} exp(f(x)^T f(u)) )
# with every score divided by tau.
def oracle_nt_xent(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor,
                   temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent with the true negative distribution (Chuang et al., 2020), using labels.

    z1, z2: (B, D) projections f(x), f(x+) of the two views (normalised here).
    labels: (B,) class of each image. temperature: tau. For each of the 2B
    anchors, the same-class negatives are dropped and the others averaged and
    scaled back to N = 2B-2 terms: N g is replaced by N times the mean of
    exp(f(x)^T f(u)/tau) over true negatives u, the quantity that the debiased g
    estimates without labels. Equals `nt_xent` when all labels differ.
    Returns the mean over the 2B anchors.
    """
    _check_pair(z1, z2, "z1", "z2")
    _check_batch(z1.shape[0], 2, "so that every anchor has a negative")
    _check_labels(labels, z1.shape[0])
    batch_size = z1.shape[0]
    scores = _simclr_logits(z1, z2, temperature)
    views = torch.arange(2 * batch_size, device=scores.device)
    positive = scores[views, (views + batch_size) % (2 * batch_size)]
    true_negative = simclr_negative_mask(batch_size, scores.device) & ~false_negative_mask(labels.to(scores.device))
    n_true = true_negative.sum(dim=1)
    if bool((n_true == 0).any()):
        raise ValueError("an anchor has no negative of another class (all images of the batch share one class); "
                         "pass a batch with images of at least two classes")
    n_negatives = 2 * batch_size - 2
    log_sum_true = torch.logsumexp(scores.masked_fill(~true_negative, float("-inf")), dim=1)
    log_mean_true = log_sum_true - n_true.to(scores.dtype).log()
    return (torch.logaddexp(positive, math.log(n_negatives) + log_mean_true) - positive).mean()


# Hard-negative importance weights (Robinson, Chuang, Sra & Jegelka 2021). The
# survey writes the weight of a negative as beta exp(f(x)^T f(x-)) / sum_{x-} exp(f(x)^T f(x-));
# the paper samples negatives from q_beta(x-) ~ exp(beta f(x)^T f(x-)) p(x-), i.e.
#   w_i = N exp(beta s_i) / sum_{k=1..N} exp(beta s_k),   s_i = f(x)^T f(u_i) / tau,
# normalised to mean 1 over the N = 2B-2 negatives of the anchor.
def hard_negative_weights(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                          beta: float = 1.0) -> torch.Tensor:
    """Importance weights of hard-negative sampling (Robinson et al., 2021).

    z1, z2: (B, D) projections of the two views (normalised here); temperature:
    tau; beta: the concentration beta >= 0 (0 gives every negative weight 1).
    Returns (2B, 2B) weights in the SimCLR layout: row a holds w_i for each of
    anchor a's N = 2B-2 negatives (mean 1 over them) and 0 at a itself and at
    a's positive. `hard_negative_nt_xent` replaces sum_i exp(s_i) by
    sum_i w_i exp(s_i) in the debiased estimator g.
    """
    _check_pair(z1, z2, "z1", "z2")
    _check_batch(z1.shape[0], 2, "so that every anchor has a negative")
    _check_non_negative(beta, "beta", "1.0")
    batch_size = z1.shape[0]
    is_negative = simclr_negative_mask(batch_size, z1.device)
    concentrated = (beta * _simclr_logits(z1, z2, temperature)).masked_fill(~is_negative, float("-inf"))
    return (2 * batch_size - 2) * torch.softmax(concentrated, dim=1)
