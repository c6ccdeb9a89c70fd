"""Tests of sslbook.losses against brute-force loops written from the survey's equations."""

import math

import pytest
import torch

from sslbook import losses

# (N, D, temperature); N = 2 is the smallest batch with a negative.
CASES = [(2, 3, 0.5), (3, 8, 0.05), (5, 4, 1.0), (4, 16, 0.2)]
DTYPES = [torch.float32, torch.float64]


def tolerance(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-5, "atol": 1e-8}


def assert_close(value: torch.Tensor, expected: float, dtype: torch.dtype) -> None:
    assert value.shape == ()
    assert value.dtype == dtype
    torch.testing.assert_close(value.double(), torch.tensor(expected, dtype=torch.float64), **tolerance(dtype))


def rows(x: torch.Tensor) -> list[list[float]]:
    return x.double().tolist()


def unit(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v))


def random_pair(n: int, d: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.8 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    return z1.to(dtype), z2.to(dtype)


# ---------------------------------------------------------------------------
# Brute-force references, one anchor and one negative at a time.
# ---------------------------------------------------------------------------


def simclr_views(z1: torch.Tensor, z2: torch.Tensor) -> tuple[list[list[float]], int]:
    views = [unit(v) for v in rows(z1) + rows(z2)]
    return views, len(views) // 2


def reference_nt_xent(z1, z2, temperature):
    z, n = simclr_views(z1, z2)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        numerator = math.exp(dot(z[i], z[j]) / temperature)
        denominator = sum(math.exp(dot(z[i], z[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(numerator / denominator)
    return total / (2 * n)


def reference_debiased(z1, z2, temperature, tau_plus, beta=0.0):
    """Chuang et al.'s g with Robinson et al.'s weights exp(beta s)/mean exp(beta s); returns (loss, #bound active)."""
    z, n = simclr_views(z1, z2)
    total, bound_active = 0.0, 0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        positive = math.exp(dot(z[i], z[j]) / temperature)
        scores = [dot(z[i], z[k]) / temperature for k in range(2 * n) if k not in (i, j)]
        weights = [math.exp(beta * s) for s in scores]
        mean_weight = sum(weights) / len(weights)
        weighted_mean = sum(w / mean_weight * math.exp(s) for w, s in zip(weights, scores)) / len(scores)
        estimate = (weighted_mean - tau_plus * positive) / (1 - tau_plus)
        bound = math.exp(-1 / temperature)
        bound_active += estimate < bound
        g = max(estimate, bound)
        total += -math.log(positive / (positive + len(scores) * g))
    return total / (2 * n), bound_active


def reference_info_nce(query, positive, negatives, temperature):
    q, p, neg = rows(query), rows(positive), negatives.double().tolist()
    total = 0.0
    for i in range(len(q)):
        negatives_i = neg[i] if negatives.ndim == 3 else neg
        numerator = math.exp(dot(q[i], p[i]) / temperature)
        denominator = numerator + sum(math.exp(dot(q[i], u) / temperature) for u in negatives_i)
        total += -math.log(numerator / denominator)
    return total / len(q)


def reference_invaspread(f, f_hat, temperature):
    f, f_hat = [unit(v) for v in rows(f)], [unit(v) for v in rows(f_hat)]
    n = len(f)
    total = 0.0
    for i in range(n):
        denominator = sum(math.exp(dot(f[k], f_hat[i]) / temperature) for k in range(n))
        total -= math.log(math.exp(dot(f[i], f_hat[i]) / temperature) / denominator)
        for j in range(n):
            if j != i:
                denominator = sum(math.exp(dot(f[k], f[j]) / temperature) for k in range(n))
                total -= math.log(1 - math.exp(dot(f[i], f[j]) / temperature) / denominator)
    return total / n


def reference_cmc(view_i, view_j, temperature):
    a, b = [unit(v) for v in rows(view_i)], [unit(v) for v in rows(view_j)]
    n = len(a)
    total = 0.0
    for s in range(n):
        total -= math.log(
            math.exp(dot(a[s], b[s]) / temperature) / sum(math.exp(dot(a[s], b[k]) / temperature) for k in range(n))
        )
        total -= math.log(
            math.exp(dot(b[s], a[s]) / temperature) / sum(math.exp(dot(b[s], a[k]) / temperature) for k in range(n))
        )
    return total / n


def reference_barlow(z1, z2, lambd):
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])
    for z in (a, b):
        for col in range(d):
            mean = sum(z[r][col] for r in range(n)) / n
            for r in range(n):
                z[r][col] -= mean
    c = [
        [
            sum(a[r][i] * b[r][j] for r in range(n))
            / (math.sqrt(sum(a[r][i] ** 2 for r in range(n))) * math.sqrt(sum(b[r][j] ** 2 for r in range(n))))
            for j in range(d)
        ]
        for i in range(d)
    ]
    loss = sum((1 - c[i][i]) ** 2 for i in range(d)) + lambd * sum(
        c[i][j] ** 2 for i in range(d) for j in range(d) if j != i
    )
    return loss, c


def reference_instdisc(scores_positive, scores_noise, n_data, normaliser):
    m = scores_noise.shape[1]

    def h(score):
        p = math.exp(score) / normaliser
        return p / (p + m / n_data)

    total = 0.0
    for s_pos, s_noise in zip(scores_positive.double().tolist(), rows(scores_noise)):
        total += -(math.log(h(s_pos)) + sum(math.log(1 - h(s)) for s in s_noise))
    return total / len(scores_noise)


# ---------------------------------------------------------------------------
# Contrastive losses on the SimCLR layout.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_nt_xent_matches_loop(n, d, temperature, dtype):
    z1, z2 = random_pair(n, d, dtype)
    assert_close(losses.nt_xent(z1, z2, temperature), reference_nt_xent(z1, z2, temperature), dtype)


@pytest.mark.parametrize("n, temperature", [(2, 0.5), (4, 0.1)])
def test_nt_xent_identical_orthogonal_embeddings(n, temperature):
    z = 3.0 * torch.eye(n, 6, dtype=torch.float64)  # scale checks the normalisation
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / temperature))
    assert_close(losses.nt_xent(z, z, temperature), expected, torch.float64)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nt_xent_low_precision_is_finite(dtype):
    z1, z2 = random_pair(8, 16, torch.float32)
    reference = losses.nt_xent(z1, z2, 0.1)
    low = losses.nt_xent(z1.to(dtype), z2.to(dtype), 0.1)
    assert low.dtype == dtype and torch.isfinite(low)
    assert abs(low.item() - reference.item()) < 0.05 * reference.item()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_debiased_matches_loop(n, d, temperature, tau_plus, dtype):
    z1, z2 = random_pair(n, d, dtype, seed=1)
    expected, _ = reference_debiased(z1, z2, temperature, tau_plus)
    assert_close(losses.debiased_nt_xent(z1, z2, temperature, tau_plus), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_debiased_lower_bound_is_applied(dtype):
    # Near-identical views: the positive dominates and the debiased estimate drops below e^{-1/t}.
    z1, _ = random_pair(4, 5, dtype, seed=2)
    z2 = z1 + 1e-3
    expected, bound_active = reference_debiased(z1, z2, 0.5, 0.6)
    assert bound_active > 0
    assert_close(losses.debiased_nt_xent(z1, z2, 0.5, 0.6), expected, dtype)


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_debiased_without_prior_equals_nt_xent(temperature):
    z1, z2 = random_pair(6, 8, torch.float64, seed=3)
    debiased = losses.debiased_nt_xent(z1, z2, temperature, tau_plus=0.0)
    torch.testing.assert_close(debiased, losses.nt_xent(z1, z2, temperature))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_hard_negative_matches_loop(n, d, temperature, beta, dtype):
    z1, z2 = random_pair(n, d, dtype, seed=4)
    expected, _ = reference_debiased(z1, z2, temperature, 0.1, beta)
    assert_close(losses.hard_negative_nt_xent(z1, z2, temperature, 0.1, beta), expected, dtype)


@pytest.mark.parametrize("tau_plus", [0.0, 0.2])
def test_hard_negative_without_reweighting_equals_debiased(tau_plus):
    z1, z2 = random_pair(5, 8, torch.float64, seed=5)
    hard = losses.hard_negative_nt_xent(z1, z2, 0.2, tau_plus, beta=0.0)
    torch.testing.assert_close(hard, losses.debiased_nt_xent(z1, z2, 0.2, tau_plus))


def test_hard_negative_upweights_hard_negatives():
    z1, z2 = random_pair(6, 8, torch.float64, seed=6)
    assert losses.hard_negative_nt_xent(z1, z2, 0.5, 0.0, beta=1.0) > losses.nt_xent(z1, z2, 0.5)


# ---------------------------------------------------------------------------
# Other contrastive losses.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_nce_loss_matches_loop(dtype):
    generator = torch.Generator().manual_seed(7)
    data = (3 * torch.randn(4, 3, generator=generator)).to(dtype)
    noise = (3 * torch.randn(7, generator=generator)).to(dtype)
    sigmoid = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    data_term = -sum(math.log(sigmoid(a)) for a in data.double().flatten().tolist()) / data.numel()
    noise_term = -sum(math.log(1 - sigmoid(a)) for a in noise.double().tolist()) / noise.numel()
    assert_close(losses.nce_loss(data, noise), data_term + noise_term, dtype)


def test_nce_loss_at_zero_logits_is_two_log_two():
    assert_close(losses.nce_loss(torch.zeros(3), torch.zeros(5, 2)), 2 * math.log(2), torch.float32)


def test_nce_loss_is_finite_for_extreme_logits():
    value = losses.nce_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert_close(value, 400.0, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_info_nce_matches_loop(n, d, temperature, shared, dtype):
    generator = torch.Generator().manual_seed(8)
    query = torch.randn(n, d, generator=generator).to(dtype)
    positive = torch.randn(n, d, generator=generator).to(dtype)
    negatives = torch.randn(*(() if shared else (n,)), 3, d, generator=generator).to(dtype)
    expected = reference_info_nce(query, positive, negatives, temperature)
    assert_close(losses.info_nce(query, positive, negatives, temperature), expected, dtype)


def test_info_nce_with_zero_scores_is_log_of_candidates():
    query = torch.zeros(3, 4)
    assert_close(losses.info_nce(query, torch.ones(3, 4), torch.ones(3, 5, 4)), math.log(6), torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_invaspread_matches_loop(n, d, temperature, dtype):
    f, f_hat = random_pair(n, d, dtype, seed=9)
    assert_close(losses.invaspread_loss(f, f_hat, temperature), reference_invaspread(f, f_hat, temperature), dtype)


def test_invaspread_orthonormal_closed_form():
    n, t = 3, 0.1
    f = torch.eye(n, dtype=torch.float64)
    expected = math.log(1 + (n - 1) * math.exp(-1 / t)) - (n - 1) * math.log(1 - 1 / (math.exp(1 / t) + n - 1))
    assert_close(losses.invaspread_loss(f, f, t), expected, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, temperature", CASES)
def test_cmc_matches_loop(n, d, temperature, dtype):
    a, b = random_pair(n, d, dtype, seed=10)
    assert_close(losses.cmc_loss(a, b, temperature), reference_cmc(a, b, temperature), dtype)


@pytest.mark.parametrize("graph, pairs", [("core", [(0, 1), (0, 2), (0, 3)]),
                                          ("full", [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])])
def test_cmc_multiview_sums_the_pairs_of_its_graph(graph, pairs):
    views = [random_pair(6, 5, torch.float64, seed=20 + m)[0] for m in range(4)]
    expected = sum(reference_cmc(views[i], views[j], 0.2) for i, j in pairs)
    assert_close(losses.cmc_multiview_loss(views, 0.2, graph), expected, torch.float64)


def test_cmc_multiview_with_two_views_is_the_two_view_loss():
    a, b = random_pair(5, 4, torch.float64, seed=30)
    for graph in ("core", "full"):
        assert_close(losses.cmc_multiview_loss([a, b], 0.3, graph), reference_cmc(a, b, 0.3), torch.float64)


def test_cmc_orthonormal_closed_form():
    n, t = 4, 0.07
    z = torch.eye(n, dtype=torch.float64)
    assert_close(losses.cmc_loss(z, 2 * z, t), 2 * math.log(1 + (n - 1) * math.exp(-1 / t)), torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, n_data, normaliser", [(1, 10, 3.0), (4, 100, 50.0), (16, 1000, 2000.0)])
def test_instdisc_matches_loop(m, n_data, normaliser, dtype):
    generator = torch.Generator().manual_seed(11)
    scores_positive = (5 * torch.randn(3, generator=generator)).to(dtype)
    scores_noise = (5 * torch.randn(3, m, generator=generator)).to(dtype)
    expected = reference_instdisc(scores_positive, scores_noise, n_data, normaliser)
    assert_close(losses.instdisc_nce_loss(scores_positive, scores_noise, n_data, normaliser), expected, dtype)
    tensor_z = torch.tensor(normaliser, dtype=dtype)
    assert_close(losses.instdisc_nce_loss(scores_positive, scores_noise, n_data, tensor_z), expected, dtype)


def test_instdisc_at_even_odds_is_log_two_per_term():
    # P(i|v) = M P_n makes h = 1/2 for every score.
    m, n_data, z = 4, 50, 7.0
    score = math.log(z * m / n_data)
    loss = losses.instdisc_nce_loss(torch.full((2,), score), torch.full((2, m), score), n_data, z)
    assert_close(loss, (1 + m) * math.log(2), torch.float32)


# ---------------------------------------------------------------------------
# Alignment, uniformity, BYOL, Barlow Twins, counting.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.5])
def test_align_matches_loop(alpha, dtype):
    x, y = random_pair(5, 4, dtype, seed=12)
    expected = sum(math.dist(a, b) ** alpha for a, b in zip(rows(x), rows(y))) / 5
    assert_close(losses.align_loss(x, y, alpha), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, t", [(2, 2.0), (5, 1.0), (7, 0.5)])
def test_uniform_matches_loop(n, t, dtype):
    x, _ = random_pair(n, 3, dtype, seed=13)
    x = torch.nn.functional.normalize(x, dim=1)
    points = rows(x)
    kernel = [math.exp(-t * math.dist(points[i], points[j]) ** 2) for i in range(n) for j in range(i + 1, n)]
    assert_close(losses.uniform_loss(x, t), math.log(sum(kernel) / len(kernel)), dtype)


def test_uniform_antipodal_pair_and_no_normalisation_inside():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert_close(losses.uniform_loss(x, t=2.0), -8.0, torch.float64)
    assert_close(losses.uniform_loss(3 * x, t=2.0), -72.0, torch.float64)
    assert_close(losses.align_loss(x, 3 * x, alpha=2), 4.0, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_byol_matches_loop_and_limits(dtype):
    p, z = random_pair(4, 6, dtype, seed=14)
    expected = sum(2 - 2 * dot(unit(a), unit(b)) for a, b in zip(rows(p), rows(z))) / 4
    assert_close(losses.byol_loss(p, z), expected, dtype)
    assert_close(losses.byol_loss(p, 5 * p), 0.0, dtype)
    assert_close(losses.byol_loss(p, -p), 4.0, dtype)


def test_byol_does_not_detach_the_target():
    p, z = random_pair(3, 4, torch.float64, seed=15)
    z.requires_grad_(True)
    losses.byol_loss(p, z).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, lambd", [(2, 3, 5e-3), (5, 4, 0.1), (16, 8, 1.0)])
def test_barlow_twins_matches_seed_formula(n, d, lambd, dtype):
    z1, z2 = random_pair(n, d, dtype, seed=16)
    z1 = z1 * torch.arange(1, d + 1, dtype=dtype) + 3.0  # per-dimension scale and offset
    expected_loss, expected_c = reference_barlow(z1, z2, lambd)
    assert_close(losses.barlow_twins_loss(z1, z2, lambd), expected_loss, dtype)
    c = losses.cross_correlation(z1, z2)
    assert c.shape == (d, d)
    torch.testing.assert_close(c.double(), torch.tensor(expected_c, dtype=torch.float64), **tolerance(dtype))


def test_barlow_twins_zero_for_decorrelated_standardised_dims():
    # Columns of a 4x4 Hadamard matrix other than the all-ones one: centred, orthogonal, equal norm.
    hadamard = torch.tensor([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=torch.float64)
    z = hadamard * torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64) - 4.0
    torch.testing.assert_close(losses.cross_correlation(z, z), torch.eye(3, dtype=torch.float64))
    assert_close(losses.barlow_twins_loss(z, z), 0.0, torch.float64)
    assert_close(losses.barlow_twins_loss(z, -z), 3 * 4.0, torch.float64)
    swapped = z[:, [1, 0, 2]]  # C has a permutation pattern: two off-diagonal ones
    assert_close(losses.barlow_twins_loss(z, swapped, lambd=0.25), 2 * 1.0 + 0.25 * 2, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_counting_loss_matches_loop(dtype):
    generator = torch.Generator().manual_seed(17)
    down = torch.rand(3, 5, generator=generator).to(dtype)
    tiles = (0.25 * torch.rand(3, 4, 5, generator=generator)).to(dtype)
    other = torch.rand(3, 5, generator=generator).to(dtype)
    margin = 0.8
    total = 0.0
    for x, t, y in zip(rows(down), tiles.double().tolist(), rows(other)):
        tile_sum = [sum(t[i][k] for i in range(4)) for k in range(5)]
        total += sum((a - b) ** 2 for a, b in zip(x, tile_sum))
        total += max(0.0, margin - sum((a - b) ** 2 for a, b in zip(y, tile_sum)))
    assert_close(losses.counting_loss(down, tiles, other, margin), total / 3, dtype)


def test_counting_loss_hand_example():
    down = torch.tensor([[4.0, 2.0]])
    tiles = torch.tensor([[[1.0, 0.5], [1.0, 0.5], [1.0, 0.5], [0.0, 0.5]]])  # sums to (3, 2)
    other = torch.tensor([[3.0, 3.0]])  # squared distance 1 to the tile sum
    assert_close(losses.counting_loss(down, tiles, other, margin=2.5), 1.0 + 1.5, torch.float32)
    assert_close(losses.counting_loss(down, tiles, other, margin=0.5), 1.0, torch.float32)


# ---------------------------------------------------------------------------
# Gradients at a small temperature, including near-collapse.
# ---------------------------------------------------------------------------

CONTRASTIVE = {
    "nt_xent": lambda a, b: losses.nt_xent(a, b, 0.05),
    "debiased": lambda a, b: losses.debiased_nt_xent(a, b, 0.05, 0.1),
    "debiased_bound": lambda a, b: losses.debiased_nt_xent(a, b, 0.05, 0.9),
    "hard_negative": lambda a, b: losses.hard_negative_nt_xent(a, b, 0.05, 0.1, 2.0),
    "info_nce": lambda a, b: losses.info_nce(a, b, torch.roll(b, 1, 0), 0.05),
    "invaspread": lambda a, b: losses.invaspread_loss(a, b, 0.05),
    "cmc": lambda a, b: losses.cmc_loss(a, b, 0.05),
    "byol": losses.byol_loss,
    "barlow_twins": losses.barlow_twins_loss,
    "align": losses.align_loss,
    "uniform": lambda a, b: losses.uniform_loss(torch.cat([a, b]), 2.0),
}


@pytest.mark.parametrize("near_identical", [False, True])
@pytest.mark.parametrize("name", sorted(CONTRASTIVE))
def test_gradients_finite_at_small_temperature(name, near_identical):
    generator = torch.Generator().manual_seed(18)
    if near_identical:  # every view of every sample almost the same vector
        base = torch.randn(1, 8, generator=generator).expand(6, 8)
        z1 = base + 1e-4 * torch.randn(6, 8, generator=generator)
        z2 = z1 + 1e-6 * torch.randn(6, 8, generator=generator)
    else:
        z1, z2 = torch.randn(2, 6, 8, generator=generator)
    z1 = torch.nn.functional.normalize(z1, dim=1).requires_grad_(True)
    z2 = torch.nn.functional.normalize(z2, dim=1).requires_grad_(True)
    loss = CONTRASTIVE[name](z1, z2)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


# ---------------------------------------------------------------------------
# Bad inputs.
# ---------------------------------------------------------------------------

Z = torch.randn(4, 3)
ONE = torch.randn(1, 3)
BAD_INPUTS = [
    (lambda: losses.nt_xent(Z, Z, 0.0), "temperature must be > 0"),
    (lambda: losses.nt_xent(Z, Z, -1.0), "temperature must be > 0"),
    (lambda: losses.nt_xent(Z, Z[:3]), "same shape"),
    (lambda: losses.nt_xent(Z[0], Z[0]), "2-D tensor"),
    (lambda: losses.nt_xent(ONE, ONE), "N must be >= 2"),
    (lambda: losses.debiased_nt_xent(Z, Z, tau_plus=1.0), "tau_plus"),
    (lambda: losses.debiased_nt_xent(Z, Z, tau_plus=-0.1), "tau_plus"),
    (lambda: losses.debiased_nt_xent(ONE, ONE), "N must be >= 2"),
    (lambda: losses.debiased_nt_xent(Z, Z, temperature=0.0), "temperature must be > 0"),
    (lambda: losses.hard_negative_nt_xent(Z, Z, beta=-1.0), "beta must be >= 0"),
    (lambda: losses.hard_negative_nt_xent(Z, Z, tau_plus=1.5), "tau_plus"),
    (lambda: losses.hard_negative_nt_xent(Z, Z[:, :2]), "same shape"),
    (lambda: losses.nce_loss(torch.zeros(0), torch.zeros(3)), "logits_data is empty"),
    (lambda: losses.nce_loss(torch.zeros(3), torch.zeros(0)), "logits_noise is empty"),
    (lambda: losses.info_nce(Z, Z, Z, temperature=0.0), "temperature must be > 0"),
    (lambda: losses.info_nce(Z, Z[:2], Z), "same shape"),
    (lambda: losses.info_nce(Z, Z, torch.randn(4, 2)), r"negatives must have shape"),
    (lambda: losses.info_nce(Z, Z, torch.randn(4, 2, 3, 3)), r"negatives must have shape"),
    (lambda: losses.info_nce(Z, Z, torch.randn(5, 2, 3)), "per-query negatives"),
    (lambda: losses.info_nce(Z, Z, torch.randn(0, 3)), "K=0"),
    (lambda: losses.align_loss(Z, Z, alpha=0), "alpha must be > 0"),
    (lambda: losses.align_loss(Z, Z[:2]), "same shape"),
    (lambda: losses.uniform_loss(Z, t=-2), "t must be > 0"),
    (lambda: losses.uniform_loss(ONE), "N must be >= 2"),
    (lambda: losses.uniform_loss(Z[0]), "2-D tensor"),
    (lambda: losses.invaspread_loss(Z, Z, temperature=0), "temperature must be > 0"),
    (lambda: losses.invaspread_loss(ONE, ONE), "N must be >= 2"),
    (lambda: losses.invaspread_loss(Z, Z[:3]), "same shape"),
    (lambda: losses.byol_loss(Z, Z[:3]), "same shape"),
    (lambda: losses.byol_loss(Z[0], Z[0]), "2-D tensor"),
    (lambda: losses.barlow_twins_loss(ONE, ONE), "N must be >= 2"),
    (lambda: losses.barlow_twins_loss(Z, Z, lambd=-1.0), "lambd must be >= 0"),
    (lambda: losses.cross_correlation(Z, Z[:, :2]), "same shape"),
    (lambda: losses.cmc_loss(Z, Z, temperature=0.0), "temperature must be > 0"),
    (lambda: losses.cmc_loss(ONE, ONE), "N must be >= 2"),
    (lambda: losses.cmc_multiview_loss([Z, Z], graph="star"), "graph must be one of"),
    (lambda: losses.cmc_multiview_loss([Z]), "at least 2 views"),
    (lambda: losses.counting_loss(Z, torch.zeros(4, 3, 3), Z, 1.0), r"counts_tiles must have shape \(N, 4, K\)"),
    (lambda: losses.counting_loss(Z, torch.zeros(4, 4, 3), Z[:2], 1.0), "same shape"),
    (lambda: losses.counting_loss(Z, torch.zeros(4, 4, 3), Z, 0.0), "margin must be > 0"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4, 1), torch.zeros(4, 2), 10, 1.0), "scores_positive must be a 1-D"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(3, 2), 10, 1.0), "scores_noise must have shape"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(4, 0), 10, 1.0), "M >= 1"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(4, 2), 0, 1.0), "n_data must be a positive int"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(4, 2), 2.5, 1.0), "n_data must be a positive int"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(4, 2), 10, 0.0), "normaliser must be > 0"),
    (lambda: losses.instdisc_nce_loss(torch.zeros(4), torch.zeros(4, 2), 10, torch.tensor(-1.0)), "positive scalar"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS)
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_error_messages_name_the_fix():
    with pytest.raises(ValueError, match="pass a positive temperature such as 0.5"):
        losses.nt_xent(Z, Z, -1.0)
    with pytest.raises(ValueError, match="use a larger batch"):
        losses.nt_xent(ONE, ONE)


# ---------------------------------------------------------------------------
# InstDisc's exact non-parametric softmax over the whole bank.
# ---------------------------------------------------------------------------


def reference_instdisc_softmax(features, bank, indices, temperature):
    """-log P(i|v) with P(i|v) = exp(v_i^T v / tau) / sum_j exp(v_j^T v / tau), a loop over every bank entry j."""
    total = 0.0
    for v, i in zip(rows(features), indices):
        exps = [math.exp(dot(entry, v) / temperature) for entry in rows(bank)]
        total += -math.log(exps[i] / sum(exps))
    return total / len(indices)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_data, temperature", [(1, 0.5), (7, 0.1), (20, 1.0)])
def test_instdisc_softmax_matches_loop_over_the_bank(n_data, temperature, dtype):
    generator = torch.Generator().manual_seed(12)
    features = torch.nn.functional.normalize(torch.randn(4, 5, generator=generator, dtype=torch.float64), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(n_data, 5, generator=generator, dtype=torch.float64), dim=1)
    indices = torch.randint(n_data, (4,), generator=generator)
    expected = reference_instdisc_softmax(features, bank, indices.tolist(), temperature)
    scores = (features @ bank.T / temperature).to(dtype)
    assert_close(losses.instdisc_softmax_loss(scores, indices), expected, dtype)


def test_instdisc_softmax_with_equal_scores_is_log_of_the_bank_size():
    loss = losses.instdisc_softmax_loss(torch.zeros(3, 50), torch.tensor([0, 7, 49]))
    assert_close(loss, math.log(50), torch.float32)


@pytest.mark.parametrize("scores, indices, message", [
    (torch.zeros(4), torch.zeros(4, dtype=torch.long), "scores must be a 2-D"),
    (torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), "N >= 1"),
    (torch.zeros(2, 0), torch.zeros(2, dtype=torch.long), "n >= 1"),
    (torch.zeros(2, 5), torch.zeros(3, dtype=torch.long), r"shape \(N,\) = \(2,\)"),
    (torch.zeros(2, 5), torch.zeros(2), "integer tensor"),
    (torch.zeros(2, 5), torch.tensor([0, 5]), r"bank rows 0\.\.4"),
    (torch.zeros(2, 5), torch.tensor([-1, 0]), r"bank rows 0\.\.4"),
])
def test_instdisc_softmax_bad_inputs_raise_value_error(scores, indices, message):
    with pytest.raises(ValueError, match=message):
        losses.instdisc_softmax_loss(scores, indices)
