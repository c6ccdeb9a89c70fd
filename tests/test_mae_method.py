"""Tests of sslbook.methods.mae: masked-autoencoder pre-training of a small ViT."""

import pytest
import torch

from sslbook.masking import random_masking
from sslbook.vit import MAEDecoder, TinyViT
from sslbook.methods.mae import MaskedAutoencoder, nearest_visible_prediction
from sslbook.train import Batch

from one_step import train_one_step


def make_batch(n: int = 2, seed: int = 0, generator_seed: int = 1, size: int = 16) -> Batch:
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(generator_seed)
    return Batch(images, torch.zeros(n, dtype=torch.long), torch.arange(n), generator)


def small_method(mask_ratio: float = 0.75, normalize_target: bool = True) -> MaskedAutoencoder:
    """16x16 images, 4x4 patches: L = 16 patches."""
    torch.manual_seed(0)
    encoder = TinyViT(image_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2)
    return MaskedAutoencoder(encoder, mask_ratio=mask_ratio, normalize_target=normalize_target,
                             decoder_dim=8, decoder_depth=1)


def capture_decoder_output(method: MaskedAutoencoder) -> dict:
    captured = {}

    def hook(module, inputs, output):
        output.retain_grad()
        captured["predicted"] = output

    method.decoder.register_forward_hook(hook)
    return captured


def patch_by_slicing(image: torch.Tensor, row: int, col: int, p: int) -> list[float]:
    """Pixels of one patch, row by row, channels last (the patchify order)."""
    return [image[c, row * p + i, col * p + j].item() for i in range(p) for j in range(p) for c in range(3)]


@pytest.mark.parametrize("normalize_target", [True, False])
def test_training_loss_matches_a_loop_over_the_masked_patches(normalize_target):
    method = small_method(normalize_target=normalize_target)
    captured = capture_decoder_output(method)
    batch = make_batch()
    loss = method.training_loss(batch).item()

    _, mask, _ = random_masking(2, 16, 0.75, torch.Generator().manual_seed(1))
    predicted = captured["predicted"].detach()
    images = batch.images.float() / 255
    errors = []
    for n in range(2):
        for index in range(16):
            if not mask[n, index]:
                continue
            target = patch_by_slicing(images[n], index // 4, index % 4, 4)
            if normalize_target:
                mean = sum(target) / len(target)
                variance = sum((t - mean) ** 2 for t in target) / (len(target) - 1)
                target = [(t - mean) / (variance + 1e-6) ** 0.5 for t in target]
            errors.append(sum((a - b) ** 2 for a, b in zip(predicted[n, index].tolist(), target)) / len(target))
    assert len(errors) == 2 * 12
    assert loss == pytest.approx(sum(errors) / len(errors), rel=1e-5)


def test_loss_ignores_visible_patches():
    method = small_method()
    captured = capture_decoder_output(method)
    method.training_loss(make_batch()).backward()
    gradient = captured["predicted"].grad
    _, mask, _ = random_masking(2, 16, 0.75, torch.Generator().manual_seed(1))
    assert gradient[~mask].abs().max() == 0, "visible patches must not contribute to the loss"
    assert (gradient[mask].abs().sum(dim=-1) > 0).all()


def test_masks_are_drawn_per_batch_from_the_generator():
    method = small_method()
    images = make_batch().images.float() / 255
    generator = torch.Generator().manual_seed(3)
    _, _, first = method.predict(images, generator=generator)
    _, _, second = method.predict(images, generator=generator)
    assert not torch.equal(first, second), "every batch must draw new masks"
    assert not torch.equal(first[0], first[1]), "every image must get its own mask"
    assert torch.equal(first, random_masking(2, 16, 0.75, torch.Generator().manual_seed(3))[1])
    assert (first.sum(dim=1) == 12).all()
    same = method.training_loss(make_batch(generator_seed=4)).item()
    again = method.training_loss(make_batch(generator_seed=4)).item()
    other = method.training_loss(make_batch(generator_seed=5)).item()
    assert same == again and same != other


def test_reconstruct_keeps_visible_patches_and_greys_out_hidden_ones():
    method = small_method(mask_ratio=0.5).eval()
    images = make_batch().images.float() / 255
    masked_input, reconstruction, mask = method.reconstruct(images, generator=torch.Generator().manual_seed(2))
    assert masked_input.shape == reconstruction.shape == images.shape
    for n in range(2):
        for index in range(16):
            rows = slice(4 * (index // 4), 4 * (index // 4) + 4)
            cols = slice(4 * (index % 4), 4 * (index % 4) + 4)
            if mask[n, index]:
                assert (masked_input[n, :, rows, cols] == 0.5).all()
            else:
                assert torch.equal(reconstruction[n, :, rows, cols], images[n, :, rows, cols])
                assert torch.equal(masked_input[n, :, rows, cols], images[n, :, rows, cols])
    assert ((reconstruction >= 0) & (reconstruction <= 1)).all()


def test_one_step_of_shared_training_changes_the_encoder():
    method = small_method()
    images = make_batch(n=8).images
    _, changed = train_one_step(method, images, watched=method.encoder, optimizer="adamw", lr=1e-2)
    assert any(changed)
    assert method.encoder(images[:2].float() / 255).shape == (2, 16)


def test_nearest_visible_prediction_copies_the_closest_visible_patch():
    generator = torch.Generator().manual_seed(0)
    patches = torch.rand(3, 16, 5, generator=generator)
    _, mask, _ = random_masking(3, 16, 0.75, generator)
    predicted = nearest_visible_prediction(patches, mask, grid_size=4)
    for n in range(3):
        visible = [j for j in range(16) if not mask[n, j]]
        for i in range(16):
            distances = [((i // 4 - j // 4) ** 2 + (i % 4 - j % 4) ** 2, j) for j in visible]
            source = min(distances)[1]  # smallest distance, then the lowest index
            assert torch.equal(predicted[n, i], patches[n, source])
    with pytest.raises(ValueError, match="hides every patch"):
        nearest_visible_prediction(patches, torch.ones(3, 16, dtype=torch.bool), grid_size=4)
    with pytest.raises(ValueError, match=r"patches must have shape \(N, 9, D\)"):
        nearest_visible_prediction(patches, mask, grid_size=3)
    with pytest.raises(ValueError, match=r"mask must be bool of shape \(3, 16\)"):
        nearest_visible_prediction(patches, mask.float(), grid_size=4)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.25])
def test_mask_ratio_outside_zero_one_stops_with_a_clear_message(ratio):
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\)"):
        MaskedAutoencoder(TinyViT(image_size=16, embed_dim=16, depth=1), mask_ratio=ratio)
    method = small_method()
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\)"):
        method.predict(torch.rand(1, 3, 16, 16), mask_ratio=ratio)


def test_bad_shapes_stop_with_a_clear_message():
    with pytest.raises(ValueError, match="patch_size 5 does not divide the 32x32 image"):
        MaskedAutoencoder(TinyViT(patch_size=5))
    with pytest.raises(ValueError, match="same image_size and patch_size=4"):
        MaskedAutoencoder(TinyViT(image_size=16, embed_dim=16, depth=1),
                          MAEDecoder(encoder_dim=16, image_size=16, patch_size=8, decoder_dim=8, depth=1))
    with pytest.raises(ValueError, match="MAEDecoder\\(encoder_dim=16\\)"):
        MaskedAutoencoder(TinyViT(image_size=16, embed_dim=16, depth=1),
                          MAEDecoder(encoder_dim=32, image_size=16, patch_size=4, decoder_dim=8, depth=1))
    with pytest.raises(ValueError, match="must be a sslbook.vit.TinyViT"):
        MaskedAutoencoder(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"TinyViT was built for \(3, 16, 16\) images"):
        small_method().training_loss(make_batch(size=32))
