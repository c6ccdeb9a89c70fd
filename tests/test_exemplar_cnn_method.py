"""Tests of Exemplar-CNN (Dosovitskiy et al. 2014): surrogate classes, their samples and the loss."""

import itertools
import math

import pytest
import torch

from sslbook import augment, train
from sslbook.methods.exemplar_cnn import (ExemplarCNN, exemplar_cifar, exemplar_patch_weights, gradient_magnitude,
                                          sample_exemplar_patches, sample_seed_patches)
from sslbook.networks import SmallCNN

from one_step import train_one_step

# No randomness left: the whole patch, no flip, no colour change, same size.
IDENTITY = augment.ViewRecipe(output_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                              jitter_p=0.0, grayscale_p=0.0)


def small_model(n_classes: int = 5, recipe=IDENTITY) -> ExemplarCNN:
    torch.manual_seed(0)
    patches = torch.randint(0, 256, (n_classes, 3, 8, 8), dtype=torch.uint8)
    return ExemplarCNN(SmallCNN(width=4, feature_dim=8), patches, recipe)


def test_each_surrogate_sample_comes_from_the_seed_patch_of_its_class():
    model = small_model()
    classes = torch.tensor([3, 0, 3, 4])
    samples = model.surrogate_samples(classes, torch.Generator().manual_seed(0))
    for sample, label in zip(samples, classes.tolist()):
        assert torch.allclose(sample, model.seed_patches[label].float() / 255, atol=1e-5)
        others = [k for k in range(model.n_classes) if k != label]
        assert all(not torch.allclose(sample, model.seed_patches[k].float() / 255, atol=1e-3) for k in others)


def test_random_transformations_of_one_class_differ_but_keep_its_content():
    model = small_model(recipe=augment.ViewRecipe(output_size=8, crop_scale=(0.5, 1.0), jitter_p=0.0,
                                                  grayscale_p=0.0))
    samples = model.surrogate_samples(torch.zeros(6, dtype=torch.long), torch.Generator().manual_seed(1))
    assert samples.shape == (6, 3, 8, 8)
    assert len({tuple(s.flatten().tolist()) for s in samples}) > 1  # different transformations
    assert (samples >= 0).all() and (samples <= 1).all()


def test_training_loss_is_the_cross_entropy_over_the_drawn_surrogate_classes():
    model = small_model(n_classes=4).eval()  # eval: batch norm uses fixed statistics
    images = torch.zeros(6, 3, 8, 8, dtype=torch.uint8)  # only their number matters
    batch = train.Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6), torch.Generator().manual_seed(7))
    output = model.training_loss(batch)
    classes = torch.randint(4, (6,), generator=torch.Generator().manual_seed(7))  # the same first draw
    total = 0.0
    with torch.no_grad():
        for label in classes.tolist():
            scores = model.classifier(model.encoder(model.seed_patches[label][None].float() / 255))[0].tolist()
            total += math.log(sum(math.exp(s) for s in scores)) - scores[label]
    assert math.isclose(output["loss"].item(), total / 6, rel_tol=1e-4)
    assert 0.0 <= output["surrogate accuracy"] <= 1.0


def test_seed_patches_from_the_gradient_weighted_sampler_become_classes():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 12, 12)
    patches, source, positions = sample_exemplar_patches(images, 6, 8, torch.Generator().manual_seed(0))
    model = ExemplarCNN(SmallCNN(width=4, feature_dim=8), patches, IDENTITY)
    assert model.n_classes == 6 and model.classifier.out_features == 6
    top, left = positions[2].tolist()
    assert torch.equal(model.seed_patches[2], images[source[2], :, top:top + 8, left:left + 8])


def test_seed_patches_come_from_different_images_and_are_their_slices():
    torch.manual_seed(0)
    images = torch.rand(6, 3, 10, 10)
    patches, source, positions = sample_seed_patches(images, 5, 6, torch.Generator().manual_seed(0))
    assert patches.shape == (5, 3, 6, 6) and len(set(source.tolist())) == 5
    for patch, image, (top, left) in zip(patches, source.tolist(), positions.tolist()):
        assert torch.equal(patch, images[image, :, top:top + 6, left:left + 6])


def test_first_seed_patch_is_the_first_draw_of_the_gradient_weighted_sampler():
    # Its first patch is the largest Gumbel key over all positions: the single draw of
    # sample_exemplar_patches, whose proportionality to gradient energy is checked below.
    torch.manual_seed(1)
    images = torch.rand(3, 3, 6, 6)
    for seed in range(5):
        _, source, positions = sample_seed_patches(images, 1, 4, torch.Generator().manual_seed(seed))
        _, expected_source, expected_positions = sample_exemplar_patches(
            images, 1, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(source, expected_source) and torch.equal(positions, expected_positions)


def test_seed_patches_reject_more_classes_than_textured_images():
    images = torch.rand(3, 3, 8, 8)
    images[2] = 0.5  # flat: no gradient, never a seed
    with pytest.raises(ValueError, match="n_classes must lie in \\[1, 2\\]"):
        sample_seed_patches(images, 3, 4)


def test_bad_seed_patches_are_rejected():
    encoder = SmallCNN(width=4, feature_dim=8)
    with pytest.raises(ValueError, match="N >= 2 surrogate classes"):
        ExemplarCNN(encoder, torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="shape \\(N, 3, p, p\\)"):
        ExemplarCNN(encoder, torch.rand(4, 8, 8))


def test_default_transformations_make_32_pixel_views_of_24_pixel_patches():
    recipe = exemplar_cifar()
    views = augment.augment(torch.rand(3, 3, 24, 24), recipe, torch.Generator().manual_seed(0))
    assert views.shape == (3, 3, 32, 32)


def test_one_training_step_through_the_shared_loop():
    model = small_model(n_classes=5, recipe=augment.ViewRecipe(output_size=8, crop_scale=(0.5, 1.0)))
    _, changed = train_one_step(model, torch.zeros(8, 3, 8, 8, dtype=torch.uint8), lr=0.01)
    assert any(changed)


# ---------------------------------------------------------------------------
# Exemplar-CNN.
# ---------------------------------------------------------------------------


def loop_sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    n, _, height, width = images.shape
    gray = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    result = torch.zeros(n, height, width, dtype=images.dtype)

    def at(i, r, c):
        return float(gray[i, min(max(r, 0), height - 1), min(max(c, 0), width - 1)])

    for i, r, c in itertools.product(range(n), range(height), range(width)):
        gx = sum(w * (at(i, r + dr, c + 1) - at(i, r + dr, c - 1)) for dr, w in [(-1, 1), (0, 2), (1, 1)])
        gy = sum(w * (at(i, r + 1, c + dc) - at(i, r - 1, c + dc)) for dc, w in [(-1, 1), (0, 2), (1, 1)])
        result[i, r, c] = math.hypot(gx, gy)
    return result


def test_gradient_magnitude_and_patch_weights_against_loops():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    magnitude = gradient_magnitude(images)
    expected = loop_sobel_magnitude(images)
    assert torch.allclose(magnitude, expected)
    weights = exemplar_patch_weights(images, patch_size=3)
    assert weights.shape == (2, 3, 4)
    for n, row, col in itertools.product(range(2), range(3), range(4)):
        energy = expected[n, row : row + 3, col : col + 3].pow(2).sum()
        assert float(weights[n, row, col]) == pytest.approx(float(energy))
    assert (gradient_magnitude(torch.full((1, 3, 4, 4), 0.3)) == 0).all()


def test_exemplar_patches_are_distinct_slices_from_textured_regions_only():
    torch.manual_seed(0)
    flat_image = torch.full((3, 16, 16), 0.5)
    half_textured = torch.full((3, 16, 16), 0.5)
    half_textured[:, :, 10:] = torch.rand(3, 16, 6)
    images = torch.stack([flat_image, half_textured])
    patches, source, positions = sample_exemplar_patches(
        images, n_patches=20, patch_size=6, generator=torch.Generator().manual_seed(0)
    )
    assert patches.shape == (20, 3, 6, 6)
    assert (source == 1).all()
    assert len({tuple(p) for p in positions.tolist()}) == 20
    gradient = loop_sobel_magnitude(images.double())
    for m in range(20):
        top, left = positions[m].tolist()
        assert 0 <= top <= 10 and 0 <= left <= 10
        assert torch.equal(patches[m], images[source[m], :, top : top + 6, left : left + 6])
        assert gradient[source[m], top : top + 6, left : left + 6].max() > 0


def test_exemplar_draw_probability_is_proportional_to_gradient_energy():
    # Two images of patch size: one candidate each, with energies in ratio 1 : 3.
    images = torch.zeros(2, 3, 4, 4)
    images[0, :, :, 2:] = 1.0
    images[1, :, :, 2:] = math.sqrt(3.0)
    weights = exemplar_patch_weights(images, patch_size=4).flatten()
    assert float(weights[1] / weights[0]) == pytest.approx(3.0)
    generator = torch.Generator().manual_seed(0)
    draws = [int(sample_exemplar_patches(images, 1, 4, generator)[1]) for _ in range(800)]
    frequency = sum(draws) / 800
    assert abs(frequency - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 800)


def test_exemplar_bad_inputs():
    with pytest.raises(ValueError, match=r"n_patches must lie in \[1, 0\]"):
        sample_exemplar_patches(torch.full((2, 3, 8, 8), 0.5), n_patches=1, patch_size=4)
    with pytest.raises(ValueError, match="patch_size must lie in"):
        sample_exemplar_patches(torch.rand(2, 3, 8, 8), n_patches=1, patch_size=9)
