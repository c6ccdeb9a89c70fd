"""Tests of the colorization method (Zhang et al. 2016) against explicit loops and closed forms."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sslbook.colour import lab_to_rgb, rgb_to_lab
from sslbook.losses import colorization_loss
from sslbook.methods.colorization import (Colorization, LightnessEncoder, ab_bin_centres, ab_bin_counts, annealed_mean,
                                          empirical_ab_distribution, encode_ab, hard_encode_ab, lightness_input,
                                          rebalancing_weights)
from sslbook.networks import SmallCNN

from one_step import random_uint8_images, train_one_step
from test_colour import scalar_srgb_to_lab

# A coarse grid of bins keeps the tests fast: step 40 leaves a few dozen in-gamut bins.
CENTRES = ab_bin_centres(step=40.0, samples_per_edge=16)


def small_model(target_size: int = 4) -> Colorization:
    torch.manual_seed(0)
    weights = torch.linspace(0.5, 2.0, len(CENTRES))
    return Colorization(SmallCNN(width=4, feature_dim=8, in_channels=1), CENTRES, weights,
                        target_size=target_size, hidden_dim=6)


def test_colorization_loss_equals_the_weighted_cross_entropy_written_with_loops():
    torch.manual_seed(0)
    n, q, h, w = 2, 5, 3, 2
    logits = torch.randn(n, q, h, w, dtype=torch.float64)
    targets = torch.softmax(3 * torch.randn(n, q, h, w, dtype=torch.float64), dim=1)
    weights = torch.rand(q, dtype=torch.float64) + 0.1
    total = 0.0
    for i in range(n):
        for r in range(h):
            for c in range(w):
                scores = [float(logits[i, k, r, c]) for k in range(q)]
                log_normaliser = math.log(sum(math.exp(s) for s in scores))
                cross_entropy = -sum(float(targets[i, k, r, c]) * (scores[k] - log_normaliser) for k in range(q))
                strongest_bin = max(range(q), key=lambda k: float(targets[i, k, r, c]))
                total += float(weights[strongest_bin]) * cross_entropy
    assert math.isclose(float(colorization_loss(logits, targets, weights)), total / (n * h * w), rel_tol=1e-5)


def test_colorization_loss_rejects_bad_shapes_and_weights():
    logits, targets = torch.randn(1, 4, 2, 2), torch.rand(1, 4, 2, 2)
    with pytest.raises(ValueError, match="same|shape \\(N, Q, H, W\\)"):
        colorization_loss(logits, torch.rand(1, 4, 3, 3), torch.ones(4))
    with pytest.raises(ValueError, match="one rebalancing weight per ab bin"):
        colorization_loss(logits, targets, torch.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        colorization_loss(logits, targets, torch.tensor([1.0, -1.0, 1.0, 1.0]))


def test_lightness_input_is_the_scaled_cie_lightness_of_each_pixel():
    images = torch.rand(2, 3, 3, 3, dtype=torch.float64)
    network_input = lightness_input(images)
    assert network_input.shape == (2, 1, 3, 3)
    for n in range(2):
        for r in range(3):
            for c in range(3):
                linear = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
                          for v in images[n, :, r, c].tolist()]
                luminance = 0.2126729 * linear[0] + 0.7151522 * linear[1] + 0.0721750 * linear[2]
                f = luminance ** (1 / 3) if luminance > (6 / 29) ** 3 else luminance * (29 / 3) ** 3 / 116 + 16 / 116
                assert math.isclose(float(network_input[n, 0, r, c]), (116 * f - 16) / 100 - 0.5, abs_tol=1e-9)


def test_lightness_encoder_ignores_colour_at_equal_lightness():
    torch.manual_seed(0)
    encoder = LightnessEncoder(SmallCNN(width=4, feature_dim=8, in_channels=1)).eval()
    lightness = 30 + 40 * torch.rand(2, 1, 8, 8, dtype=torch.float64)
    grey = lab_to_rgb(torch.cat([lightness, torch.zeros(2, 2, 8, 8, dtype=torch.float64)], dim=1))
    coloured = lab_to_rgb(torch.cat([lightness, torch.full((2, 1, 8, 8), 15.0, dtype=torch.float64),
                                             torch.full((2, 1, 8, 8), -10.0, dtype=torch.float64)], dim=1))
    assert not torch.allclose(grey, coloured, atol=1e-2)
    with torch.no_grad():
        assert torch.allclose(encoder(grey.float()), encoder(coloured.float()), atol=1e-4)


def test_targets_soft_encode_the_block_averaged_ab_channels():
    model = small_model(target_size=4)
    torch.manual_seed(2)
    images = torch.rand(2, 3, 8, 8)
    targets = model.targets(images)
    assert targets.shape == (2, len(CENTRES), 4, 4)
    assert torch.allclose(targets.sum(dim=1), torch.ones(2, 4, 4), atol=1e-5)
    ab = rgb_to_lab(images.double())[:, 1:]
    for n in range(2):
        for r in range(4):
            for c in range(4):
                mean_ab = ab[n, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].mean(dim=(-2, -1))
                distances = [float(((centre.double() - mean_ab) ** 2).sum()) for centre in CENTRES]
                nearest = min(range(len(CENTRES)), key=lambda k: distances[k])
                assert int(targets[n, :, r, c].argmax()) == nearest
                assert int((targets[n, :, r, c] > 0).sum()) == 5  # k = 5 nearest bins share the pixel


def test_logits_have_one_score_per_bin_at_the_target_resolution():
    model = small_model(target_size=4).eval()
    with torch.no_grad():
        assert model.logits(torch.rand(3, 3, 16, 16)).shape == (3, len(CENTRES), 4, 4)


def test_colorize_keeps_the_lightness_and_decodes_a_certain_bin_to_its_centre():
    model = small_model().eval()
    grey_bin = int(CENTRES.norm(dim=1).argmin())  # the bin at a = b = 0
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.fill_(-30.0)
        model.decoder[-1].bias[grey_bin] = 30.0
    torch.manual_seed(3)
    images = torch.rand(2, 3, 8, 8)
    coloured = model.colorize(images)
    lightness = rgb_to_lab(images)[:, :1]
    expected = lab_to_rgb(torch.cat([lightness, torch.zeros(2, 2, 8, 8)], dim=1)).clamp(0, 1)
    assert coloured.shape == images.shape
    assert torch.allclose(coloured, expected, atol=1e-4)


def test_ab_bin_counts_equal_the_counts_of_the_nearest_centres():
    centres = ab_bin_centres()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8)
    counts = ab_bin_counts(images, centres, batch_size=2)
    assert int(counts.sum()) == 5 * 36
    nearest = hard_encode_ab(rgb_to_lab(images.float() / 255)[:, 1:], centres)
    assert torch.equal(counts, torch.bincount(nearest.flatten(), minlength=len(centres)))


def test_ab_bin_counts_reject_bad_arguments():
    images = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    with pytest.raises(ValueError, match="batch_size"):
        ab_bin_counts(images, CENTRES, step=40.0, batch_size=0)
    with pytest.raises(ValueError, match="grid of step 10"):
        ab_bin_counts(images, CENTRES + 3.0, step=10.0)
    saturated = torch.tensor([255, 0, 0], dtype=torch.uint8).reshape(1, 3, 1, 1).expand(1, 3, 4, 4)
    grey_only = torch.zeros(1, 2)  # a single bin at a = b = 0
    with pytest.raises(ValueError, match="not among the centres"):
        ab_bin_counts(saturated, grey_only, step=10.0)


def test_bad_constructor_arguments_are_rejected():
    encoder = SmallCNN(width=4, feature_dim=8, in_channels=1)
    with pytest.raises(ValueError, match="centres must be \\(Q, 2\\) and weights \\(Q,\\)"):
        Colorization(encoder, CENTRES, torch.ones(len(CENTRES) + 1))
    with pytest.raises(ValueError, match="target_size"):
        Colorization(encoder, CENTRES, torch.ones(len(CENTRES)), target_size=0)


def test_one_training_step_through_the_shared_loop():
    model = small_model(target_size=2)
    _, changed = train_one_step(model, random_uint8_images(8, size=8), lr=0.01)
    assert any(changed)
    assert F.mse_loss(model.centres, CENTRES) == 0  # the bins are a buffer, not trained


# ---------------------------------------------------------------------------
# Colorization: ab bins, encoding, rebalancing, decoding.
# ---------------------------------------------------------------------------


def test_default_gamut_bins_are_plausible_and_cover_the_whole_cube():
    centres = ab_bin_centres()
    assert centres.shape[1] == 2 and 250 <= centres.shape[0] <= 400
    assert torch.equal(centres, torch.round(centres / 10) * 10)
    assert len({tuple(c) for c in centres.tolist()}) == centres.shape[0]
    # Colours inside the cube add no bin to those found on its surface.
    values = torch.linspace(0, 1, 33, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(values, values, values, indexing="ij")).reshape(3, -1, 1)
    interior_bins = torch.floor(rgb_to_lab(cube)[1:].reshape(2, -1).T / 10 + 0.5) * 10
    assert {tuple(b) for b in interior_bins.tolist()} <= {tuple(c) for c in centres.tolist()}


def test_gamut_bins_equal_a_brute_force_loop_over_the_cube_surface():
    samples = 5
    grid = [i / (samples - 1) for i in range(samples)]
    surface = [rgb for rgb in itertools.product(grid, repeat=3) if any(c in (0.0, 1.0) for c in rgb)]
    edge_grid = [i / (samples**2 - 1) for i in range(samples**2)]
    edges = [rgb for rgb in itertools.product(edge_grid, repeat=3) if sum(c in (0.0, 1.0) for c in rgb) >= 2]
    expected = set()
    for rgb in surface + edges:
        _, a, b = scalar_srgb_to_lab(*rgb)
        expected.add((10.0 * math.floor(a / 10 + 0.5), 10.0 * math.floor(b / 10 + 0.5)))
    centres = ab_bin_centres(samples_per_edge=samples, dtype=torch.float64)
    assert {tuple(c) for c in centres.tolist()} == expected


def test_hard_and_soft_encoding_against_loops():
    torch.manual_seed(0)
    centres = ab_bin_centres(samples_per_edge=16)
    ab = (torch.rand(2, 2, 3, 4) - 0.5) * 120
    hard = hard_encode_ab(ab, centres)
    soft = encode_ab(ab, centres, sigma=5.0, k=5)
    assert soft.shape == (2, centres.shape[0], 3, 4)
    for n, row, col in itertools.product(range(2), range(3), range(4)):
        pixel = ab[n, :, row, col]
        distances = [float((pixel - c).norm()) for c in centres]
        order = sorted(range(len(distances)), key=distances.__getitem__)
        assert hard[n, row, col] == order[0]
        raw = {q: math.exp(-distances[q] ** 2 / 50) for q in order[:5]}
        total = sum(raw.values())
        expected = torch.zeros(centres.shape[0])
        for q, value in raw.items():
            expected[q] = value / total
        assert torch.allclose(soft[n, :, row, col], expected, atol=1e-6)
        assert soft[n, :, row, col].argmax() == hard[n, row, col]


def test_ab_bin_counts_count_every_pixel_in_its_nearest_bin():
    torch.manual_seed(0)
    centres = ab_bin_centres()
    images = torch.rand(3, 3, 4, 4)
    counts = ab_bin_counts(images, centres)
    lab = rgb_to_lab(images)
    expected = torch.zeros(centres.shape[0], dtype=torch.long)
    for n, row, col in itertools.product(range(3), range(4), range(4)):
        distances = ((centres - lab[n, 1:, row, col]) ** 2).sum(1)
        expected[int(distances.argmin())] += 1
    assert torch.equal(counts, expected) and counts.sum() == 48


def test_encoding_bad_inputs():
    centres = ab_bin_centres(samples_per_edge=8)
    with pytest.raises(ValueError, match=r"ab must have shape \(N, 2, H, W\)"):
        encode_ab(torch.rand(1, 3, 2, 2), centres)
    with pytest.raises(ValueError, match="k must lie in"):
        encode_ab(torch.rand(1, 2, 2, 2), centres, k=centres.shape[0] + 1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        encode_ab(torch.rand(1, 2, 2, 2), centres, sigma=0)


def test_rebalancing_weights_have_unit_expectation_and_the_paper_form():
    counts = torch.tensor([50, 30, 15, 5, 0])
    weights = rebalancing_weights(counts, lam=0.5)
    p = [c / 100 for c in counts.tolist()]
    raw = [1 / (0.5 * p_q + 0.5 / 5) for p_q in p]
    scale = sum(p_q * w for p_q, w in zip(p, raw))
    assert weights.tolist() == pytest.approx([w / scale for w in raw])
    assert sum(p_q * w for p_q, w in zip(p, weights.tolist())) == pytest.approx(1.0)
    assert torch.allclose(rebalancing_weights(counts, lam=1.0), torch.ones(5, dtype=torch.float64))


def test_rebalancing_weights_with_smoothing_have_unit_expectation_under_smoothed_distribution():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [30.0, 30.0]])
    counts = torch.tensor([10, 0, 5, 1])
    smoothed = []
    for q in range(4):
        smoothed.append(
            sum(counts[r] / 16 * math.exp(-float((centres[q] - centres[r]).norm()) ** 2 / 50) for r in range(4))
        )
    smoothed = [float(s) / float(sum(smoothed)) for s in smoothed]
    distribution = empirical_ab_distribution(counts, centres, sigma=5.0)
    assert distribution.tolist() == pytest.approx(smoothed)
    weights = rebalancing_weights(counts, lam=0.5, centres=centres, sigma=5.0)
    assert sum(p * w for p, w in zip(smoothed, weights.tolist())) == pytest.approx(1.0)


def test_rebalancing_bad_inputs():
    with pytest.raises(ValueError, match="pass lam > 0"):
        rebalancing_weights(torch.tensor([3, 0, 1]), lam=0.0)
    with pytest.raises(ValueError, match=r"lam \(lambda\) must lie in \[0, 1\]"):
        rebalancing_weights(torch.tensor([3, 1]), lam=1.5)
    with pytest.raises(ValueError, match="needs the bin centres"):
        rebalancing_weights(torch.tensor([3, 1]), sigma=5.0)


def test_annealed_mean_interpolates_between_mean_and_mode():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, -20.0], [40.0, 30.0]], dtype=torch.float64)
    probs = torch.softmax(torch.randn(2, 3, 2, 2, dtype=torch.float64), dim=1)
    mean = annealed_mean(probs, centres, temperature=1.0)
    mode = annealed_mean(probs, centres, temperature=1e-3)
    annealed = annealed_mean(probs, centres, temperature=0.38)
    for n, row, col in itertools.product(range(2), range(2), range(2)):
        z = probs[n, :, row, col].tolist()
        expected_mean = [sum(z[q] * float(centres[q, c]) for q in range(3)) for c in range(2)]
        assert mean[n, :, row, col].tolist() == pytest.approx(expected_mean)
        assert mode[n, :, row, col].tolist() == pytest.approx(centres[max(range(3), key=z.__getitem__)].tolist())
        sharpened = [z_q ** (1 / 0.38) for z_q in z]
        expected = [sum(s * float(centres[q, c]) for q, s in enumerate(sharpened)) / sum(sharpened) for c in range(2)]
        assert annealed[n, :, row, col].tolist() == pytest.approx(expected)


def test_annealed_mean_bad_inputs():
    centres = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        annealed_mean(torch.rand(1, 3, 2, 2), centres, temperature=0.0)
    with pytest.raises(ValueError, match="same Q"):
        annealed_mean(torch.rand(1, 4, 2, 2), centres)
