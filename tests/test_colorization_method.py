"""Tests of the colorization method (Zhang et al. 2016) against explicit loops and closed forms."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslbook import pretext
from sslbook.methods.colorization import (Colorization, LightnessEncoder, ab_bin_counts, colorization_loss,
                                          lightness_input)
from sslbook.networks import SmallCNN

from one_step import random_uint8_images, train_one_step

# A coarse grid of bins keeps the tests fast: step 40 leaves a few dozen in-gamut bins.
CENTRES = pretext.ab_bin_centres(step=40.0, samples_per_edge=16)


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
    grey = pretext.lab_to_rgb(torch.cat([lightness, torch.zeros(2, 2, 8, 8, dtype=torch.float64)], dim=1))
    coloured = pretext.lab_to_rgb(torch.cat([lightness, torch.full((2, 1, 8, 8), 15.0, dtype=torch.float64),
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
    ab = pretext.rgb_to_lab(images.double())[:, 1:]
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
    lightness = pretext.rgb_to_lab(images)[:, :1]
    expected = pretext.lab_to_rgb(torch.cat([lightness, torch.zeros(2, 2, 8, 8)], dim=1)).clamp(0, 1)
    assert coloured.shape == images.shape
    assert torch.allclose(coloured, expected, atol=1e-4)


def test_ab_bin_counts_equal_the_nearest_centre_counts_of_the_pretext_module():
    centres = pretext.ab_bin_centres()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8)
    counts = ab_bin_counts(images, centres, batch_size=2)
    assert int(counts.sum()) == 5 * 36
    assert torch.equal(counts, pretext.in_gamut_bins_for(pretext.rgb_to_lab(images.float() / 255), centres))


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
