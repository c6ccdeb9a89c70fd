"""Tests of the Learning to Count method (Noroozi et al. 2017) against explicit loops."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from sslbook import augment, train
from sslbook.data import ImageData
from sslbook.methods.counting import RANDOM_FILTERS, Counting, count_views, downsample_randomly
from sslbook.networks import SmallCNN
from sslbook.runs import describe_run

from one_step import random_uint8_images, train_one_step


def small_counter(n_counts: int = 6, margin: float = 2.0, **options) -> Counting:
    torch.manual_seed(0)
    return Counting(SmallCNN(width=4, feature_dim=8), n_counts=n_counts, margin=margin, **options).eval()


def downsample_by_loop(image: torch.Tensor) -> torch.Tensor:
    """D: the mean of every 2x2 pixel block, computed pixel by pixel."""
    channels, height, width = image.shape
    out = torch.empty(channels, height // 2, width // 2, dtype=image.dtype)
    for r in range(height // 2):
        for c in range(width // 2):
            out[:, r, c] = image[:, 2 * r:2 * r + 2, 2 * c:2 * c + 2].mean(dim=(-2, -1))
    return out


def tiles_by_loop(image: torch.Tensor) -> list[torch.Tensor]:
    """T_1..T_4: top-left, top-right, bottom-left, bottom-right quarters."""
    half_h, half_w = image.shape[1] // 2, image.shape[2] // 2
    return [image[:, r * half_h:(r + 1) * half_h, c * half_w:(c + 1) * half_w] for r in range(2) for c in range(2)]


def test_counts_of_views_equal_phi_of_each_view_computed_one_by_one():
    model = small_counter()  # eval mode: batch norm uses fixed statistics, so one image at a time agrees
    torch.manual_seed(1)
    images = torch.rand(3, 3, 8, 8)
    counts_downsampled, counts_tiles, counts_other = model.counts_of_views(images)
    assert counts_downsampled.shape == (3, 6) and counts_tiles.shape == (3, 4, 6) and counts_other.shape == (3, 6)
    with torch.no_grad():
        for n in range(3):
            expected_down = model.count(downsample_by_loop(images[n])[None])[0]
            assert torch.allclose(counts_downsampled[n], expected_down, atol=1e-5)
            for i, tile in enumerate(tiles_by_loop(images[n])):
                assert torch.allclose(counts_tiles[n, i], model.count(tile[None])[0], atol=1e-5)
            other = downsample_by_loop(images[(n - 1) % 3])  # y is the previous image of the batch
            assert torch.allclose(counts_other[n], model.count(other[None])[0], atol=1e-5)


def test_counts_are_non_negative():
    model = small_counter()
    with torch.no_grad():
        model.counter_head.bias.fill_(-0.5)  # push many pre-activations below zero
        counts = model.count(torch.rand(5, 3, 8, 8))
    assert (counts >= 0).all() and (counts == 0).any()


def test_training_loss_is_the_counting_objective_written_with_loops():
    model = small_counter(margin=3.0)
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    batch = train.Batch(images, torch.zeros(4, dtype=torch.long), torch.arange(4), torch.Generator())
    floats = images.float() / 255
    per_image = []
    with torch.no_grad():
        for n in range(4):
            tiles_total = sum(model.count(tile[None])[0] for tile in tiles_by_loop(floats[n]))
            own = model.count(downsample_by_loop(floats[n])[None])[0]
            other = model.count(downsample_by_loop(floats[(n - 1) % 4])[None])[0]
            same_term = ((own - tiles_total) ** 2).sum()
            contrastive_term = max(0.0, 3.0 - float(((other - tiles_total) ** 2).sum()))
            per_image.append(float(same_term) + contrastive_term)
        output = model.training_loss(batch)
    assert torch.allclose(output["loss"], torch.tensor(sum(per_image) / 4), atol=1e-4)
    assert output["mean total count"] >= 0


def test_the_trivial_counter_phi_zero_pays_exactly_the_margin():
    model = small_counter(margin=2.5)
    with torch.no_grad():
        model.counter_head.weight.zero_()
        model.counter_head.bias.zero_()
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    batch = train.Batch(images, torch.zeros(3, dtype=torch.long), torch.arange(3), torch.Generator())
    with torch.no_grad():
        assert torch.allclose(model.training_loss(batch)["loss"], torch.tensor(2.5))


def test_bad_arguments_and_inputs_are_rejected():
    encoder = SmallCNN(width=4, feature_dim=8)
    with pytest.raises(ValueError, match="n_counts"):
        Counting(encoder, n_counts=0)
    with pytest.raises(ValueError, match="margin"):
        Counting(encoder, margin=0.0)
    with pytest.raises(ValueError, match="even H and W"):
        small_counter().counts_of_views(torch.rand(2, 3, 7, 8))


def test_one_training_step_through_the_shared_loop_with_augmentation():
    torch.manual_seed(0)
    recipe = augment.ViewRecipe(output_size=8, crop_scale=(0.6, 1.0), jitter_p=0.0, grayscale_p=0.0)
    model = Counting(SmallCNN(width=4, feature_dim=8), n_counts=6, margin=2.0, recipe=recipe)
    _, changed = train_one_step(model, random_uint8_images(8, size=8), lr=0.01)
    assert any(changed)


# ---------------------------------------------------------------------------
# Learning to count.
# ---------------------------------------------------------------------------


def test_count_views_tiles_reassemble_and_downsampling_averages_blocks():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 6, 8), torch.rand(2, 3, 6, 8)
    downsampled_x, tiles, downsampled_y = count_views(x, y)
    assert tiles.shape == (2, 4, 3, 3, 4) and downsampled_x.shape == downsampled_y.shape == (2, 3, 3, 4)
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    assert torch.equal(torch.cat([top, bottom], dim=-2), x)
    for image, result in [(x, downsampled_x), (y, downsampled_y)]:
        for n, c, row, col in itertools.product(range(2), range(3), range(3), range(4)):
            block = image[n, c, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2]
            assert result[n, c, row, col] == pytest.approx(float(block.mean()), abs=1e-6)
    bilinear = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert torch.allclose(downsampled_x, bilinear, atol=1e-6)


def test_count_views_bad_inputs():
    with pytest.raises(ValueError, match="even H and W"):
        count_views(torch.rand(1, 3, 5, 4), torch.rand(1, 3, 5, 4))
    with pytest.raises(ValueError, match="same shape"):
        count_views(torch.rand(1, 3, 4, 4), torch.rand(2, 3, 4, 4))


# ---------------------------------------------------------------------------
# Learning to count: the downsampling filter D (downsampling="area" | "random").
# ---------------------------------------------------------------------------


def test_area_downsampling_is_the_default_two_by_two_average():
    torch.manual_seed(2)
    images = torch.rand(3, 3, 8, 8)
    default, area = small_counter(), small_counter(downsampling="area")
    with torch.no_grad():
        for counts, expected in zip(area.counts_of_views(images, torch.Generator()), default.counts_of_views(images)):
            assert torch.equal(counts, expected)
        expected_down = torch.stack([default.count(downsample_by_loop(image)[None])[0] for image in images])
        assert torch.allclose(area.counts_of_views(images)[0], expected_down, atol=1e-5)


def test_random_downsampling_applies_torchs_own_filter_to_each_image():
    torch.manual_seed(3)
    images = torch.rand(24, 3, 8, 6)
    downsampled, filters = downsample_randomly(images, torch.Generator().manual_seed(5))
    assert downsampled.shape == (24, 3, 4, 3) and filters.shape == (24,)
    assert len(set(filters.tolist())) > 1  # different images, different filters
    for image, result, k in zip(images, downsampled, filters.tolist()):
        mode = RANDOM_FILTERS[k]
        expected = F.interpolate(image[None], size=(4, 3), mode=mode, antialias=mode in ("bilinear", "bicubic"))[0]
        torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)
    nearest = RANDOM_FILTERS.index("nearest")
    assert torch.equal(downsampled[filters == nearest], images[filters == nearest][:, :, ::2, ::2])


def test_random_downsampling_is_reproducible_from_the_generator_seed():
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    first, filters = downsample_randomly(images, torch.Generator().manual_seed(9))
    again, filters_again = downsample_randomly(images, torch.Generator().manual_seed(9))
    assert torch.equal(first, again) and torch.equal(filters, filters_again)
    _, other_filters = downsample_randomly(images, torch.Generator().manual_seed(10))
    assert not torch.equal(filters, other_filters)


def test_random_downsampling_counts_each_image_once_by_its_drawn_filter():
    model = small_counter(downsampling="random")
    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        counts_downsampled, counts_tiles, counts_other = model.counts_of_views(images, torch.Generator().manual_seed(7))
        downsampled, _ = downsample_randomly(images, torch.Generator().manual_seed(7))
        for n in range(5):
            assert torch.allclose(counts_downsampled[n], model.count(downsampled[n][None])[0], atol=1e-5)
            assert torch.allclose(counts_other[n], counts_downsampled[(n - 1) % 5])  # D∘y: the previous image's D∘x
            for i, tile in enumerate(tiles_by_loop(images[n])):
                assert torch.allclose(counts_tiles[n, i], model.count(tile[None])[0], atol=1e-5)


def test_one_training_step_with_random_downsampling():
    torch.manual_seed(0)
    model = Counting(SmallCNN(width=4, feature_dim=8), n_counts=6, margin=2.0, downsampling="random")
    _, changed = train_one_step(model, random_uint8_images(8, size=8), lr=0.01)
    assert any(changed)


def test_downsampling_is_area_by_default_and_random_changes_the_fingerprint():
    data = ImageData(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
    described = [describe_run(small_counter(**options), train.TrainConfig(), data)
                 for options in ({}, {"downsampling": "area"}, {"downsampling": "random"})]
    assert described[1] == described[0]
    assert described[2]["architecture"] != described[0]["architecture"]


def test_a_bad_downsampling_name_is_refused():
    with pytest.raises(ValueError, match="downsampling must be one of 'area', 'random', got 'bilinear'"):
        small_counter(downsampling="bilinear")
    with pytest.raises(ValueError, match="even H and W"):
        downsample_randomly(torch.rand(1, 3, 8, 7))
