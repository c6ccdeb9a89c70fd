"""Tests of Part III's building blocks against brute-force loops and closed forms: corruptions and masks
(sslbook.masking), patches, the small ViT and its decoder, the autoencoder, the discriminator, the losses."""

import math
import re

import pytest
import torch

from sslbook.autoencoder import ConvAutoencoder
from sslbook.losses import (
    adversarial_discriminator_loss,
    adversarial_generator_loss,
    context_encoder_joint_loss,
    mae_loss,
    masked_reconstruction_loss,
)
from sslbook.masking import apply_mask, centre_mask, corrupt, masked_patch_count, random_block_masks, random_masking
from sslbook.networks import CIFAR_MEAN, ContextDiscriminator
from sslbook.patches import patch_mean_and_std, patchify, standardise_patches, unpatchify
from sslbook.vit import MAEDecoder, TinyViT, sincos_position_embedding_2d


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def interior_images(n: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Images with every value in [0.05, 0.95], so 0 and 1 only appear where corrupted."""
    return 0.05 + 0.9 * torch.rand(n, 3, size, size, generator=seeded(seed))


# ------------------------------------------------------------ corruption


@pytest.mark.parametrize("level", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_masking_noise_zeroes_exact_fraction_of_positions_in_all_channels(level):
    images = interior_images(n=3, size=8)
    corrupted = corrupt(images, "masking", level, generator=seeded(1))
    expected = round(level * 64)
    for n in range(3):
        zero_positions = 0
        for i in range(8):
            for j in range(8):
                pixel = corrupted[n, :, i, j]
                if (pixel == 0).any():
                    assert (pixel == 0).all(), "masking must zero every channel of a position"
                    zero_positions += 1
                else:
                    assert torch.equal(pixel, images[n, :, i, j])
        assert zero_positions == expected


def test_masking_noise_differs_per_image_and_is_reproducible():
    images = interior_images(n=4, size=8)
    first = corrupt(images, "masking", 0.5, generator=seeded(3))
    again = corrupt(images, "masking", 0.5, generator=seeded(3))
    assert torch.equal(first, again)
    patterns = [(first[n, 0] == 0) for n in range(4)]
    assert any(not torch.equal(patterns[0], p) for p in patterns[1:])


def test_salt_and_pepper_sets_exact_fraction_to_black_or_white():
    images = interior_images(n=3, size=8)
    corrupted = corrupt(images, "salt_and_pepper", 0.5, generator=seeded(2))
    values_seen = set()
    for n in range(3):
        changed = 0
        for i in range(8):
            for j in range(8):
                pixel = corrupted[n, :, i, j]
                if torch.equal(pixel, images[n, :, i, j]):
                    continue
                changed += 1
                assert (pixel == pixel[0]).all() and pixel[0].item() in (0.0, 1.0)
                values_seen.add(pixel[0].item())
        assert changed == 32
    assert values_seen == {0.0, 1.0}


def test_gaussian_noise_has_requested_std_on_mid_grey():
    grey = torch.full((4, 3, 32, 32), 0.5)
    noisy = corrupt(grey, "gaussian", 0.1, generator=seeded(0))
    deviation = noisy - 0.5
    # 0.5 is five standard deviations from 0 and 1, so clamping practically never acts.
    assert abs(deviation.std().item() - 0.1) < 0.005
    assert abs(deviation.mean().item()) < 0.005
    assert torch.equal(corrupt(grey, "gaussian", 0.0), grey)


def test_gaussian_noise_is_clamped_to_valid_pixels():
    grey = torch.full((2, 3, 16, 16), 0.5)
    noisy = corrupt(grey, "gaussian", 1.0, generator=seeded(0))
    assert noisy.min().item() == 0.0 and noisy.max().item() == 1.0
    assert ((noisy > 0) & (noisy < 1)).any()


def test_corrupt_rejects_bad_arguments():
    images = interior_images()
    listing = "unknown corruption kind 'blur'; use one of 'gaussian', 'masking', 'salt_and_pepper'"
    with pytest.raises(ValueError, match=listing):
        corrupt(images, "blur", 0.1)
    with pytest.raises(ValueError, match="must be >= 0.*non-negative"):
        corrupt(images, "gaussian", -0.1)
    for kind in ("masking", "salt_and_pepper"):
        for level in (1.0, -0.1, 1.5):
            with pytest.raises(ValueError, match=r"must be in \[0, 1\).*pass a fraction"):
                corrupt(images, kind, level)
    with pytest.raises(ValueError, match="unit_float"):
        corrupt((images * 255).to(torch.uint8), "masking", 0.1)
    with pytest.raises(ValueError, match="unsqueeze"):
        corrupt(images[0], "masking", 0.1)


# ------------------------------------------------------- context encoder


def test_centre_mask_is_central_quarter():
    mask = centre_mask(32, 32)
    assert mask.shape == (32, 32) and mask.dtype == torch.bool
    assert mask.sum().item() == 256
    for i in range(32):
        for j in range(32):
            assert mask[i, j].item() == (8 <= i < 24 and 8 <= j < 24)
    odd = centre_mask(10, 10)  # side round(10 * 0.5) = 5, top (10 - 5) // 2 = 2
    assert odd.sum().item() == 25 and odd[2:7, 2:7].all()
    assert centre_mask(32, 32, fraction=1 / 16).sum().item() == 64
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match=r"must be in \(0, 1\).*pass 0.25"):
            centre_mask(32, 32, fraction)


def test_random_block_masks_are_squares_inside_the_image():
    masks = random_block_masks(6, 32, 32, block_size=8, n_blocks=1, generator=seeded(0))
    assert masks.shape == (6, 32, 32) and masks.dtype == torch.bool
    for n in range(6):
        rows = [i for i in range(32) if masks[n, i].any()]
        cols = [j for j in range(32) if masks[n, :, j].any()]
        assert len(rows) == 8 and len(cols) == 8
        assert rows == list(range(rows[0], rows[0] + 8)) and cols == list(range(cols[0], cols[0] + 8))
        assert masks[n].sum().item() == 64
    assert len({tuple(masks[n].nonzero()[0].tolist()) for n in range(6)}) > 1
    several = random_block_masks(4, 32, 32, block_size=4, n_blocks=5, generator=seeded(1))
    for n in range(4):
        assert 16 <= several[n].sum().item() <= 80
    with pytest.raises(ValueError, match=r"block_size must be in \[1, 32\].*pass a smaller block"):
        random_block_masks(2, 32, 32, block_size=40, n_blocks=1)
    with pytest.raises(ValueError, match="n_blocks must be >= 1"):
        random_block_masks(2, 32, 32, block_size=4, n_blocks=0)


def test_apply_mask_fills_only_the_hole():
    images = interior_images(n=2, size=8)
    mask = centre_mask(8, 8)
    filled = apply_mask(images, mask)
    black = apply_mask(images, mask, fill=0.0)
    for n in range(2):
        for i in range(8):
            for j in range(8):
                if mask[i, j]:
                    assert torch.allclose(filled[n, :, i, j], torch.tensor(CIFAR_MEAN))
                    assert (black[n, :, i, j] == 0).all()
                else:
                    assert torch.equal(filled[n, :, i, j], images[n, :, i, j])
    per_image = random_block_masks(2, 8, 8, block_size=3, n_blocks=2, generator=seeded(0))
    assert torch.equal(apply_mask(images, per_image, fill=0.0) == 0, per_image[:, None].expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="fill must be one value or 3 values"):
        apply_mask(images, mask, fill=(0.5, 0.5))
    with pytest.raises(ValueError, match="pass mask.bool"):
        apply_mask(images, mask.float())
    with pytest.raises(ValueError, match="centre_mask"):
        apply_mask(images, centre_mask(16, 16))


def brute_force_reconstruction_loss(prediction, target, mask, overlap_weight=None, overlap_width=1):
    n_images, channels, height, width = prediction.shape
    total, weight_sum = 0.0, 0.0
    for n in range(n_images):
        hole = mask if mask.ndim == 2 else mask[n]
        for i in range(height):
            for j in range(width):
                if hole[i, j]:
                    weight = 1.0
                elif overlap_weight is not None and any(
                    hole[a, b]
                    for a in range(max(0, i - overlap_width), min(height, i + overlap_width + 1))
                    for b in range(max(0, j - overlap_width), min(width, j + overlap_width + 1))
                ):
                    weight = overlap_weight
                else:
                    continue
                for c in range(channels):
                    total += weight * (prediction[n, c, i, j].item() - target[n, c, i, j].item()) ** 2
                    weight_sum += weight
    return total / weight_sum


def test_masked_reconstruction_loss_matches_brute_force():
    prediction = torch.rand(2, 3, 8, 8, generator=seeded(0))
    target = torch.rand(2, 3, 8, 8, generator=seeded(1))
    shared = centre_mask(8, 8)
    per_image = random_block_masks(2, 8, 8, block_size=3, n_blocks=2, generator=seeded(2))
    for mask in (shared, per_image):
        expected = brute_force_reconstruction_loss(prediction, target, mask)
        assert masked_reconstruction_loss(prediction, target, mask).item() == pytest.approx(expected, rel=1e-5)
        for width in (1, 2):
            expected = brute_force_reconstruction_loss(prediction, target, mask, 10.0, width)
            loss = masked_reconstruction_loss(prediction, target, mask, overlap_weight=10.0, overlap_width=width)
            assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_masked_reconstruction_loss_ignores_pixels_outside_the_hole():
    prediction = torch.rand(2, 3, 8, 8, generator=seeded(0))
    target = torch.rand(2, 3, 8, 8, generator=seeded(1))
    mask = centre_mask(8, 8)  # rows and columns 2..5
    loss = masked_reconstruction_loss(prediction, target, mask)
    changed = prediction.clone()
    changed[:, :, 0, 0] += 5.0
    changed[:, :, 1, 3] += 5.0  # next to the hole: only counts with an overlap band
    assert masked_reconstruction_loss(changed, target, mask).item() == pytest.approx(loss.item())
    banded = masked_reconstruction_loss(prediction, target, mask, overlap_weight=10.0)
    assert masked_reconstruction_loss(changed, target, mask, overlap_weight=10.0).item() != pytest.approx(banded.item())
    changed[:, :, 3, 3] += 5.0
    assert masked_reconstruction_loss(changed, target, mask).item() != pytest.approx(loss.item())
    with pytest.raises(ValueError, match="selects no pixel"):
        masked_reconstruction_loss(prediction, target, torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="overlap_weight must be > 0"):
        masked_reconstruction_loss(prediction, target, mask, overlap_weight=0.0)


def test_adversarial_losses_match_closed_form():
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 0.0, 1.5, 4.0])

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))

    generator_expected = sum(-math.log(sigmoid(z)) for z in fake.tolist()) / 4
    discriminator_expected = sum(-math.log(sigmoid(z)) for z in real.tolist()) / 3 + sum(
        -math.log(1 - sigmoid(z)) for z in fake.tolist()
    ) / 4
    assert adversarial_generator_loss(fake).item() == pytest.approx(generator_expected, rel=1e-6)
    assert adversarial_discriminator_loss(real, fake).item() == pytest.approx(discriminator_expected, rel=1e-6)
    assert adversarial_generator_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)
    joint = context_encoder_joint_loss(torch.tensor(2.0), torch.tensor(3.0))
    assert joint.item() == pytest.approx(0.999 * 2.0 + 0.001 * 3.0)


def test_context_discriminator_gives_one_logit_per_image_and_trains():
    torch.manual_seed(0)
    discriminator = ContextDiscriminator()
    full = torch.rand(2, 3, 32, 32)
    centre = full[:, :, 8:24, 8:24]
    assert discriminator(full).shape == (2,)
    logits = discriminator(centre)
    assert logits.shape == (2,)
    adversarial_discriminator_loss(logits, discriminator(torch.rand(2, 3, 16, 16))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


# ------------------------------------------------------------ autoencoder


def test_conv_autoencoder_shapes_and_gradients():
    torch.manual_seed(0)
    model = ConvAutoencoder()
    images = torch.rand(2, 3, 32, 32)
    reconstruction = model(images)
    assert reconstruction.shape == (2, 3, 32, 32)
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert model.encode(images).shape == (2, 128, 4, 4)
    assert model.features(images).shape == (2, model.feature_dim) == (2, 128)
    corrupted = corrupt(images, "masking", 0.25, generator=seeded(0))
    torch.nn.functional.mse_loss(model(corrupted), images).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 3, 30, 30))


# ------------------------------------------------------- masked autoencoder


def test_patchify_matches_grid_slices_and_round_trips():
    images = torch.rand(2, 3, 8, 12, generator=seeded(0))
    patches = patchify(images, 4)
    assert patches.shape == (2, 6, 48)
    for n in range(2):
        for r in range(2):
            for c in range(3):
                block = images[n, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
                expected = [block[ch, i, j].item() for i in range(4) for j in range(4) for ch in range(3)]
                assert patches[n, r * 3 + c].tolist() == expected
    assert torch.equal(unpatchify(patches, 4, 8, 12), images)
    cifar = torch.rand(2, 3, 32, 32, generator=seeded(1))
    for p in (1, 2, 4, 8, 16, 32):
        assert torch.equal(unpatchify(patchify(cifar, p), p, 32, 32), cifar)


def test_patch_size_must_divide_image():
    images = torch.rand(1, 3, 32, 32)
    message = re.escape("patch_size 5 does not divide the 32x32 image; use a divisor such as 2, 4, 8")
    with pytest.raises(ValueError, match=message):
        patchify(images, 5)
    with pytest.raises(ValueError, match=message):
        unpatchify(torch.rand(1, 64, 75), 5, 32, 32)
    with pytest.raises(ValueError, match=message):
        TinyViT(patch_size=5)
    with pytest.raises(ValueError, match=r"patch_size must be a positive int.*pass 4"):
        patchify(images, 0)
    with pytest.raises(ValueError, match=r"pass the output of patchify"):
        unpatchify(torch.rand(1, 63, 48), 4, 32, 32)


@pytest.mark.parametrize("n_patches", [4, 10, 16, 20, 64])
@pytest.mark.parametrize("mask_ratio", [0.25, 0.5, 0.75, 0.9])
def test_random_masking_hides_exact_count_and_indices_are_consistent(n_patches, mask_ratio):
    expected_masked = round(n_patches * mask_ratio)
    if not 1 <= expected_masked <= n_patches - 1:
        with pytest.raises(ValueError, match="pass a mask_ratio between"):
            random_masking(3, n_patches, mask_ratio)
        return
    keep, mask, restore = random_masking(5, n_patches, mask_ratio, generator=seeded(0))
    n_keep = n_patches - expected_masked
    assert keep.shape == (5, n_keep) and mask.shape == (5, n_patches) and restore.shape == (5, n_patches)
    assert mask.dtype == torch.bool and keep.dtype == torch.long and restore.dtype == torch.long
    values = torch.randn(5, n_patches, 3, generator=seeded(1))
    for n in range(5):
        assert int(mask[n].sum()) == expected_masked
        assert sorted(restore[n].tolist()) == list(range(n_patches))
        assert len(set(keep[n].tolist())) == n_keep
        for i in range(n_patches):
            assert mask[n, i].item() == (i not in keep[n].tolist())
            assert mask[n, i].item() == (restore[n, i].item() >= n_keep)
            if not mask[n, i]:
                assert keep[n, restore[n, i]].item() == i
    # Visible tokens followed by placeholders, gathered at restore, land at their patch positions.
    visible = values.gather(1, keep[..., None].expand(-1, -1, 3))
    placeholder = torch.full((5, expected_masked, 3), float("nan"))
    restored = torch.cat([visible, placeholder], dim=1).gather(1, restore[..., None].expand(-1, -1, 3))
    assert torch.equal(restored[~mask], values[~mask])
    assert restored[mask].isnan().all()


def test_masked_patch_count_literal_values():
    assert masked_patch_count(64, 0.75) == 48
    assert masked_patch_count(20, 0.9) == 18  # the MAE code's int(20 * (1 - 0.9)) would keep 1, hide 19
    assert masked_patch_count(16, 0.5) == 8


@pytest.mark.parametrize("bad_ratio", [0.0, 1.0, -0.1, 1.5])
def test_random_masking_rejects_bad_ratio(bad_ratio):
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\).*pass a fraction such as 0.75"):
        random_masking(2, 64, bad_ratio)


def test_random_masking_is_reproducible_and_differs_per_image():
    first = random_masking(4, 64, 0.75, generator=seeded(7))
    again = random_masking(4, 64, 0.75, generator=seeded(7))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    mask = first[1]
    assert not all(torch.equal(mask[0], mask[n]) for n in range(1, 4))


def brute_force_mae_loss(prediction, target, mask, normalize_target):
    total, count = 0.0, 0
    for n in range(prediction.shape[0]):
        for i in range(prediction.shape[1]):
            if not mask[n, i]:
                continue
            pixels = target[n, i].tolist()
            if normalize_target:
                mean = sum(pixels) / len(pixels)
                variance = sum((v - mean) ** 2 for v in pixels) / (len(pixels) - 1)
                pixels = [(v - mean) / math.sqrt(variance + 1e-6) for v in pixels]
            predicted = prediction[n, i].tolist()
            total += sum((a - b) ** 2 for a, b in zip(predicted, pixels)) / len(pixels)
            count += 1
    return total / count


@pytest.mark.parametrize("normalize_target", [True, False])
def test_mae_loss_matches_brute_force_and_ignores_visible_patches(normalize_target):
    prediction = torch.randn(3, 16, 12, generator=seeded(0))
    target = torch.rand(3, 16, 12, generator=seeded(1))
    _, mask, _ = random_masking(3, 16, 0.75, generator=seeded(2))
    loss = mae_loss(prediction, target, mask, normalize_target=normalize_target)
    assert loss.item() == pytest.approx(brute_force_mae_loss(prediction, target, mask, normalize_target), rel=1e-5)
    visible_changed = prediction.clone()
    visible_changed[~mask] += 3.0
    assert mae_loss(visible_changed, target, mask, normalize_target).item() == pytest.approx(loss.item(), rel=1e-6)
    masked_changed = prediction.clone()
    first_masked = mask[0].nonzero()[0, 0]
    masked_changed[0, first_masked] += 3.0
    assert mae_loss(masked_changed, target, mask, normalize_target).item() != pytest.approx(loss.item(), rel=1e-3)


def test_mae_loss_rejects_bad_mask():
    prediction = torch.zeros(2, 4, 12)
    with pytest.raises(ValueError, match="pass the second output of random_masking"):
        mae_loss(prediction, prediction, torch.ones(2, 4))
    with pytest.raises(ValueError, match="hides no patch"):
        mae_loss(prediction, prediction, torch.zeros(2, 4, dtype=torch.bool))


def test_standardised_patches_match_a_loop_and_patch_statistics_undo_them():
    patches = torch.rand(2, 4, 12, generator=seeded(0), dtype=torch.float64)
    standardised = standardise_patches(patches)
    for n in range(2):
        for i in range(4):
            values = patches[n, i].tolist()
            mean = sum(values) / len(values)
            variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)  # unbiased, as in MAE
            expected = [(v - mean) / math.sqrt(variance + 1e-6) for v in values]
            assert standardised[n, i].tolist() == pytest.approx(expected, rel=1e-12)
    mean, std = patch_mean_and_std(patches)
    assert torch.allclose(standardised * std + mean, patches)


def test_sincos_position_embedding_formula():
    embedding = sincos_position_embedding_2d(8, 3, 4)
    assert embedding.shape == (12, 8)
    for r in range(3):
        for c in range(4):
            expected = []
            for position in (r, c):
                frequencies = [10000 ** (-k / 2) for k in range(2)]
                expected += [math.sin(position * w) for w in frequencies]
                expected += [math.cos(position * w) for w in frequencies]
            assert embedding[r * 4 + c].tolist() == pytest.approx(expected, abs=1e-6)


def test_tiny_vit_encoder_sees_only_visible_patches():
    torch.manual_seed(0)
    encoder = TinyViT().eval()
    images = torch.rand(2, 3, 32, 32)
    assert encoder.n_patches == 64 and encoder.feature_dim == 128
    assert encoder(images).shape == (2, 128)
    assert encoder.forward_tokens(images).shape == (2, 65, 128)
    keep, mask, _ = random_masking(2, 64, 0.75, generator=seeded(0))
    tokens = encoder.forward_tokens(images, keep)
    assert tokens.shape == (2, 1 + 16, 128)
    # Scrambling the pixels of masked patches must not change what the encoder outputs.
    patches = patchify(images, 4)
    patches[mask] = torch.rand(int(mask.sum()), 48)
    scrambled = unpatchify(patches, 4, 32, 32)
    assert torch.allclose(encoder.forward_tokens(scrambled, keep), tokens, atol=1e-6)
    # Scrambling a visible patch does change it.
    patches[0, keep[0, 0]] = torch.rand(48)
    assert not torch.allclose(encoder.forward_tokens(unpatchify(patches, 4, 32, 32), keep), tokens, atol=1e-4)
    with pytest.raises(ValueError, match="build TinyViT"):
        encoder(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="first output of random_masking"):
        encoder.forward_tokens(images, keep[:1])


def test_mae_forward_pass_shapes_and_gradients():
    torch.manual_seed(0)
    encoder, decoder = TinyViT(), MAEDecoder()
    images = torch.rand(2, 3, 32, 32)
    keep, mask, restore = random_masking(2, 64, 0.75, generator=seeded(0))
    prediction = decoder(encoder.forward_tokens(images, keep), restore)
    assert prediction.shape == (2, 64, 48)
    mae_loss(prediction, patchify(images, 4), mask).backward()
    for name, parameter in list(encoder.named_parameters()) + list(decoder.named_parameters()):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="third output of random_masking"):
        decoder(encoder.forward_tokens(images, keep), restore[:, :10])
