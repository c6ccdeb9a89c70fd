"""Tests of NCE's logit and toy density (sslbook.losses, sslbook.toy_data), and of CPC's candidate sets and
sequence model (sslbook.predictive_coding)."""

import math

import pytest
import torch

from sslbook import losses
from sslbook.losses import info_nce, nce_logit
from sslbook.predictive_coding import SequenceCPC, candidate_sets, identification_accuracy, mutual_information_bound
from sslbook.toy_data import UnnormalisedMixture, log_partition_on_grid, sine_sequences


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# NCE
# ---------------------------------------------------------------------------


def test_nce_logit_is_log_model_minus_log_nu_noise():
    log_model = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    log_noise = torch.tensor([-0.3, 0.2, -2.0], dtype=torch.float64)
    expected = [m - math.log(3.0 * math.exp(n)) for m, n in zip(log_model.tolist(), log_noise.tolist())]
    torch.testing.assert_close(nce_logit(log_model, log_noise, nu=3.0), torch.tensor(expected, dtype=torch.float64))


def test_nce_logit_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        nce_logit(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="nu must be > 0"):
        nce_logit(torch.zeros(3), torch.zeros(3), nu=0.0)


def test_nce_optimum_is_the_data_density():
    # With p_data = p_noise = N(0, 1) the NCE loss, as a function of c alone (p0 = the exact
    # unnormalised Gaussian), is minimised at c = -log Z = -log sqrt(2 pi): there G = 0 everywhere and
    # the loss is 2 log 2, while G = delta gives log(1 + e^-delta) + log(1 + e^delta) > 2 log 2.
    generator = seeded(0)
    data = torch.randn(1000, generator=generator, dtype=torch.float64)
    noise = torch.randn(1000, generator=generator, dtype=torch.float64)

    def loss_at(c):
        log_noise = lambda x: -x.pow(2) / 2 - 0.5 * math.log(2 * math.pi)
        return losses.nce_loss(nce_logit(-data.pow(2) / 2 + c, log_noise(data)),
                               nce_logit(-noise.pow(2) / 2 + c, log_noise(noise))).item()

    optimum = -0.5 * math.log(2 * math.pi)
    assert loss_at(optimum) < loss_at(optimum + 0.2)
    assert loss_at(optimum) < loss_at(optimum - 0.2)
    assert abs(loss_at(optimum) - 2 * math.log(2)) < 1e-9  # the classifier can only guess


def test_unnormalised_mixture_matches_a_loop():
    means = torch.tensor([[0.0, 1.0], [2.0, -1.0]], dtype=torch.float64)
    model = UnnormalisedMixture(means)
    with torch.no_grad():
        model.log_scales.copy_(torch.tensor([0.2, -0.5]))
        model.log_weights.copy_(torch.tensor([0.3, -0.7]))
        model.log_normaliser.fill_(-1.5)
    points = torch.tensor([[0.5, 0.5], [-1.0, 2.0], [2.0, -1.0]], dtype=torch.float64)
    expected = []
    for x in points.tolist():
        total = 0.0
        for mu, log_s, w in zip(means.tolist(), [0.2, -0.5], [0.3, -0.7]):
            squared = (x[0] - mu[0]) ** 2 + (x[1] - mu[1]) ** 2
            total += math.exp(w - squared / (2 * math.exp(2 * log_s)))
        expected.append(math.log(total))
    torch.testing.assert_close(model.log_unnormalised(points), torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(model(points), torch.tensor(expected, dtype=torch.float64) - 1.5)


def test_unnormalised_mixture_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(K, D\)"):
        UnnormalisedMixture(torch.zeros(3))
    with pytest.raises(ValueError, match=r"x must have shape \(M, 2\)"):
        UnnormalisedMixture(torch.zeros(3, 2))(torch.zeros(4, 3))


def test_grid_log_partition_matches_closed_forms():
    # A normalised standard Gaussian integrates to 1.
    gaussian = lambda x: -x.pow(2).sum(1) / 2 - math.log(2 * math.pi)
    assert abs(log_partition_on_grid(gaussian, -8, 8, 200).item()) < 1e-4
    # The mixture: Z = sum_k e^{w_k} 2 pi s_k^2.
    model = UnnormalisedMixture(torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64))
    with torch.no_grad():
        model.log_scales.copy_(torch.tensor([0.1, -0.3]))
        model.log_weights.copy_(torch.tensor([0.5, 1.0]))
    closed_form = math.log(sum(math.exp(w) * 2 * math.pi * math.exp(2 * s) for w, s in [(0.5, 0.1), (1.0, -0.3)]))
    with torch.no_grad():
        assert abs(log_partition_on_grid(model.log_unnormalised, -8, 8, 300).item() - closed_form) < 1e-4


def test_grid_log_partition_rejects_bad_grids():
    with pytest.raises(ValueError, match="high > low"):
        log_partition_on_grid(lambda x: x.sum(1), 1.0, -1.0)
    with pytest.raises(ValueError, match="resolution must be >= 2"):
        log_partition_on_grid(lambda x: x.sum(1), -1.0, 1.0, resolution=1)


# ---------------------------------------------------------------------------
# Grouped InfoNCE
# ---------------------------------------------------------------------------


def reference_grouped_loss(predicted, target, order, n_candidates):
    """-log softmax of the positive, one prediction and one candidate at a time."""
    rows = order.tolist()
    total, count = 0.0, 0
    for start in range(0, len(rows) - n_candidates + 1, n_candidates):
        group = rows[start:start + n_candidates]
        for a in group:
            scores = [sum(p * t for p, t in zip(predicted[a].tolist(), target[b].tolist())) for b in group]
            total += -scores[group.index(a)] + math.log(sum(math.exp(s) for s in scores))
            count += 1
    return total / count


def test_candidate_sets_group_the_rows_and_info_nce_scores_them():
    generator = seeded(1)
    predicted = torch.randn(11, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(11, 3, generator=generator, dtype=torch.float64)
    predicted_sets, target_sets = candidate_sets(predicted, target, 4, seeded(7))
    assert predicted_sets.shape == target_sets.shape == (2, 4, 3)  # 11 // 4 sets; the 3 rows left over are dropped
    order = torch.randperm(11, generator=seeded(7))
    for g in range(2):
        for a in range(4):
            assert torch.equal(predicted_sets[g, a], predicted[order[4 * g + a]])
            assert torch.equal(target_sets[g, a], target[order[4 * g + a]])
    expected = reference_grouped_loss(predicted, target, order, 4)
    assert info_nce(predicted_sets, target_sets).item() == pytest.approx(expected, rel=1e-10)


def test_info_nce_over_sets_is_the_mean_over_the_sets():
    generator = seeded(3)
    query, positive = torch.randn(2, 2, 5, 4, generator=generator, dtype=torch.float64).unbind(0)
    negatives = torch.randn(2, 5, 3, 4, generator=generator, dtype=torch.float64)
    for given in (negatives, None):
        per_set = [info_nce(query[g], positive[g], None if given is None else given[g], 0.5) for g in range(2)]
        assert info_nce(query, positive, given, 0.5).item() == pytest.approx(sum(per_set).item() / 2, rel=1e-12)


def test_one_group_without_shuffling_is_info_nce():
    generator = seeded(2)
    predicted = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    negatives = torch.stack([target[torch.arange(6) != a] for a in range(6)])
    expected = reference_grouped_loss(predicted, target, torch.arange(6), 6)
    loss = info_nce(*candidate_sets(predicted, target))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert info_nce(predicted, target).item() == pytest.approx(expected, rel=1e-10)
    assert loss.item() == pytest.approx(losses.info_nce(predicted, target, negatives).item(), rel=1e-10)


def test_identification_accuracy_and_bound():
    scores = torch.tensor([[[5.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]])  # rows 0 and 2 are right
    assert identification_accuracy(scores, torch.eye(3)[None]).item() == pytest.approx(2 / 3)  # z^_a^T e_b = scores
    assert mutual_information_bound(1.0, 8).item() == pytest.approx(math.log(8) - 1.0)
    with pytest.raises(ValueError, match="n_candidates must be >= 2"):
        mutual_information_bound(1.0, 1)


def test_grouped_info_nce_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        candidate_sets(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="between 2"):
        candidate_sets(torch.zeros(4, 3), torch.zeros(4, 3), 5, seeded())
    with pytest.raises(ValueError, match="between 2"):
        candidate_sets(torch.zeros(4, 3), torch.zeros(4, 3), 1, seeded())
    with pytest.raises(ValueError, match="at least 2 rows"):
        candidate_sets(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="need N >= 2"):
        info_nce(torch.zeros(1, 1, 3), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match=r"\(G, N, D\)"):
        identification_accuracy(torch.zeros(3, 3), torch.zeros(3, 3))


# ---------------------------------------------------------------------------
# Sequence CPC
# ---------------------------------------------------------------------------


def test_sine_sequences_follow_their_frequency():
    signals, frequencies = sine_sequences(5, length=64, noise=0.0, generator=seeded(3))
    assert signals.shape == (5, 1, 64) and frequencies.shape == (5,)
    assert ((frequencies >= 0.02) & (frequencies <= 0.12)).all()
    # A noiseless sine satisfies x_{t+1} + x_{t-1} = 2 cos(2 pi f) x_t.
    x = signals[:, 0].double()
    ratio = (x[:, 2:] + x[:, :-2]) / x[:, 1:-1]
    big = x[:, 1:-1].abs() > 0.3
    for n in range(5):
        expected = 2 * math.cos(2 * math.pi * frequencies[n].item())
        assert ratio[n][big[n]].sub(expected).abs().max() < 1e-3
    again, _ = sine_sequences(5, length=64, noise=0.0, generator=seeded(3))
    assert torch.equal(signals, again)


def test_sine_sequences_reject_bad_arguments():
    with pytest.raises(ValueError, match="Nyquist"):
        sine_sequences(2, frequency_range=(0.1, 0.6))
    with pytest.raises(ValueError, match="noise must be >= 0"):
        sine_sequences(2, noise=-1.0)
    with pytest.raises(ValueError, match="need n >= 1"):
        sine_sequences(0)


def test_sequence_cpc_shapes_and_causality():
    torch.manual_seed(0)
    model = SequenceCPC(latent_dim=8, context_dim=6, hidden_channels=8, prediction_steps=(1, 3), window=4)
    signals = torch.randn(3, 1, 40)
    z, c = model(signals)
    assert z.shape == (3, 10, 8) and c.shape == (3, 10, 6)
    pairs = model.predictions(z, c)
    assert [p.shape for p, _ in pairs] == [(27, 8), (21, 8)]
    torch.testing.assert_close(pairs[1][1], z[:, 3:].flatten(0, 1))  # targets are z_{t+k}
    # Changing samples from 4t on must leave z_{<t} and c_{<t} unchanged.
    changed = signals.clone()
    changed[:, :, 20:] += 1.0  # t = 5
    z_changed, c_changed = model(changed)
    torch.testing.assert_close(z_changed[:, :5], z[:, :5])
    torch.testing.assert_close(c_changed[:, :5], c[:, :5])
    assert not torch.allclose(c_changed[:, 5:], c[:, 5:])


def test_sequence_cpc_one_training_step():
    torch.manual_seed(0)
    model = SequenceCPC(latent_dim=8, context_dim=8, hidden_channels=8, prediction_steps=(1, 2), window=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    signals, _ = sine_sequences(8, length=32, generator=seeded(4))
    before = [p.detach().clone() for p in model.parameters()]
    output = model.loss(signals, 8, seeded(5))
    assert torch.isfinite(output["loss"]) and 0 <= output["accuracy"].item() <= 1
    optimizer.zero_grad()
    output["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_sequence_cpc_rejects_bad_inputs():
    with pytest.raises(ValueError, match="prediction_steps"):
        SequenceCPC(prediction_steps=())
    with pytest.raises(ValueError, match="window must be >= 1"):
        SequenceCPC(window=0)
    with pytest.raises(ValueError, match=r"shape \(n, 1, T\)"):
        SequenceCPC()(torch.zeros(2, 32))
    with pytest.raises(ValueError, match=r"T >= 8"):
        SequenceCPC(window=8)(torch.zeros(2, 1, 5))
    model = SequenceCPC(prediction_steps=(1, 4), window=4)
    with pytest.raises(ValueError, match="longer signals"):
        model.loss(torch.zeros(2, 1, 16), 2)  # 4 latents cannot predict 4 steps ahead
