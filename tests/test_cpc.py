"""Tests of sslbook.cpc (NCE pieces, grouped InfoNCE, sequence CPC) and sslbook.methods.cpc_v2."""

import math

import pytest
import torch

from sslbook import losses
from sslbook.augment import ViewRecipe
from sslbook.cpc import (
    SequenceCPC,
    UnnormalisedMixture,
    candidate_logits,
    identification_accuracy,
    info_nce_from_logits,
    log_partition_on_grid,
    mutual_information_bound,
    nce_logit,
    sine_sequences,
)
from sslbook.methods.cpc_v2 import (
    DIRECTIONS,
    CausalRowConv2d,
    ContextNetwork,
    CPCv2,
    PatchGridEncoder,
    patch_grid,
)
from sslbook.networks import SmallCNN
from sslbook.train import Batch


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


def test_candidate_logits_groups_and_scores():
    generator = seeded(1)
    predicted = torch.randn(11, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(11, 3, generator=generator, dtype=torch.float64)
    logits = candidate_logits(predicted, target, 4, seeded(7))
    assert logits.shape == (2, 4, 4)  # 11 // 4 groups; the 3 rows left over are dropped
    order = torch.randperm(11, generator=seeded(7))
    for g in range(2):
        for a in range(4):
            for b in range(4):
                row_a, row_b = order[4 * g + a], order[4 * g + b]
                assert logits[g, a, b].item() == pytest.approx((predicted[row_a] @ target[row_b]).item())
    expected = reference_grouped_loss(predicted, target, order, 4)
    assert info_nce_from_logits(logits).item() == pytest.approx(expected, rel=1e-10)


def test_one_group_without_shuffling_is_info_nce():
    generator = seeded(2)
    predicted = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    target = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    negatives = torch.stack([target[torch.arange(6) != a] for a in range(6)])
    expected = reference_grouped_loss(predicted, target, torch.arange(6), 6)
    loss = info_nce_from_logits(candidate_logits(predicted, target))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert loss.item() == pytest.approx(losses.info_nce(predicted, target, negatives).item(), rel=1e-10)


def test_identification_accuracy_and_bound():
    logits = torch.tensor([[[5.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0]]])  # rows 0 and 2 are right
    assert identification_accuracy(logits).item() == pytest.approx(2 / 3)
    assert mutual_information_bound(1.0, 8).item() == pytest.approx(math.log(8) - 1.0)
    with pytest.raises(ValueError, match="n_candidates must be >= 2"):
        mutual_information_bound(1.0, 1)


def test_grouped_info_nce_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        candidate_logits(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="between 2"):
        candidate_logits(torch.zeros(4, 3), torch.zeros(4, 3), 5, seeded())
    with pytest.raises(ValueError, match="between 2"):
        candidate_logits(torch.zeros(4, 3), torch.zeros(4, 3), 1, seeded())
    with pytest.raises(ValueError, match="at least 2 rows"):
        candidate_logits(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(G, N, N\)"):
        info_nce_from_logits(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(G, N, N\)"):
        identification_accuracy(torch.zeros(3, 3))


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


# ---------------------------------------------------------------------------
# CPC v2
# ---------------------------------------------------------------------------


def tiny_cnn() -> SmallCNN:
    return SmallCNN(width=4, feature_dim=8)


def test_patch_grid_cuts_overlapping_patches():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    patches = patch_grid(images, 8, 4)
    assert patches.shape == (2, 7, 7, 3, 8, 8)
    for n in range(2):
        for i in range(7):
            for j in range(7):
                assert torch.equal(patches[n, i, j], images[n, :, 4 * i:4 * i + 8, 4 * j:4 * j + 8])
    assert patch_grid(images[:, :, :30, :30], 8, 4).shape[1:3] == (6, 6)  # pixels past the last patch unused


def test_patch_grid_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        patch_grid(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="larger than the images"):
        patch_grid(torch.zeros(1, 3, 6, 6), 8, 4)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        patch_grid(torch.zeros(1, 3, 32, 32), 8, 0)


def test_patch_grid_encoder_is_the_mean_of_patch_latents():
    torch.manual_seed(0)
    encoder = PatchGridEncoder(tiny_cnn()).eval()
    images = torch.rand(2, 3, 32, 32)
    features = encoder(images)
    assert features.shape == (2, encoder.feature_dim) == (2, 8)
    with torch.no_grad():
        for n in range(2):
            per_patch = [encoder.patch_encoder(images[n:n + 1, :, 4 * i:4 * i + 8, 4 * j:4 * j + 8])
                         for i in range(7) for j in range(7)]
            torch.testing.assert_close(features[n], torch.cat(per_patch).mean(0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="feature_dim"):
        PatchGridEncoder(torch.nn.Conv2d(3, 4, 3))


def test_causal_row_conv_sees_only_rows_above():
    torch.manual_seed(0)
    conv = CausalRowConv2d(3, 4, (3, 3))
    x = torch.randn(2, 3, 7, 7)
    out = conv(x)
    assert out.shape == (2, 4, 7, 7)
    changed = x.clone()
    changed[:, :, 4] += 1.0
    out_changed = conv(changed)
    torch.testing.assert_close(out_changed[:, :, :4], out[:, :, :4])
    assert not torch.allclose(out_changed[:, :, 4], out[:, :, 4])
    # Row i of the output is the plain convolution of rows i-2..i (zero rows above the grid).
    padded = torch.nn.functional.pad(x, (1, 1, 2, 0))
    expected = torch.nn.functional.conv2d(padded, conv.weight, conv.bias)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="odd width"):
        CausalRowConv2d(3, 4, (3, 2))


@pytest.mark.parametrize("row", [1, 3, 6])
def test_context_network_is_causal_over_rows(row):
    torch.manual_seed(0)
    context = ContextNetwork(latent_dim=8, context_dim=6, n_blocks=2)
    z = torch.randn(2, 8, 7, 7)
    c = context(z)
    changed = z.clone()
    changed[:, :, row] = torch.randn(2, 8, 7)  # a later row changes ...
    c_changed = context(changed)
    torch.testing.assert_close(c_changed[:, :, :row], c[:, :, :row])  # ... earlier contexts do not
    assert not torch.allclose(c_changed[:, :, row], c[:, :, row])


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_predictions_never_see_their_targets(direction):
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn(), context_dim=6, prediction_steps=(2, 3), n_candidates=4, directions=(direction,))
    z = torch.randn(2, 8, 7, 7)
    pairs = model.predictions(z, direction)
    assert [p.shape for p, _ in pairs] == [(2 * 5 * 7, 8), (2 * 4 * 7, 8)]
    # The line read last in this direction is never a context for any prediction, only a target.
    changed = z.clone()
    last_line = {"down": (slice(None), slice(None), 6), "up": (slice(None), slice(None), 0),
                 "right": (slice(None), slice(None), slice(None), 6),
                 "left": (slice(None), slice(None), slice(None), 0)}[direction]
    changed[last_line] += 1.0
    for (predicted, target), (predicted_changed, target_changed) in zip(pairs, model.predictions(changed, direction)):
        torch.testing.assert_close(predicted_changed, predicted)
        assert not torch.allclose(target_changed, target)


def test_down_targets_are_k_rows_below():
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn(), context_dim=6, prediction_steps=(2,), n_candidates=4, directions=("down",))
    z = torch.randn(1, 8, 7, 7)
    (_, target), = model.predictions(z, "down")
    for i in range(5):
        for j in range(7):
            torch.testing.assert_close(target[i * 7 + j], z[0, :, i + 2, j])


def test_cpc_v2_one_training_step():
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn(), context_dim=8, prediction_steps=(2, 3), n_candidates=16,
                  patch_recipe=ViewRecipe(output_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)))
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    batch = Batch(images, torch.zeros(4, dtype=torch.long), torch.arange(4), seeded(6))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    output = model.training_loss(batch)
    assert torch.isfinite(output["loss"]) and 0 <= output["accuracy"] <= 1
    optimizer.zero_grad()
    output["loss"].backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cpc_v2_rejects_bad_settings():
    with pytest.raises(ValueError, match="prediction_steps"):
        CPCv2(tiny_cnn(), prediction_steps=(0, 2))
    with pytest.raises(ValueError, match="n_candidates must be >= 2"):
        CPCv2(tiny_cnn(), n_candidates=1)
    with pytest.raises(ValueError, match="directions must be distinct names"):
        CPCv2(tiny_cnn(), directions=("down", "diagonal"))
    with pytest.raises(ValueError, match="output_size=8"):
        CPCv2(tiny_cnn(), patch_recipe=ViewRecipe(output_size=32))
    model = CPCv2(tiny_cnn(), prediction_steps=(2, 7), n_candidates=4, directions=("down",))
    with pytest.raises(ValueError, match="more rows"):
        model.predictions(torch.zeros(1, 8, 7, 7), "down")
    with pytest.raises(ValueError, match="unknown direction"):
        model.predictions(torch.zeros(1, 8, 7, 7), "up")
