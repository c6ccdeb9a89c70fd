"""Tests of sslbook.methods.dae: the denoising autoencoder as a training method."""

import pytest
import torch

from sslbook.autoencoder import AutoencoderFeatures, ConvAutoencoder
from sslbook.losses import denoising_loss
from sslbook.masking import corrupt
from sslbook.methods.dae import DenoisingAutoencoder, neighbour_average_fill
from sslbook.train import Batch

from one_step import train_one_step


def make_batch(n: int = 4, seed: int = 0, generator_seed: int = 1) -> Batch:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(generator_seed)
    return Batch(images, torch.zeros(n, dtype=torch.long), torch.arange(n), generator)


def small_method(**options) -> DenoisingAutoencoder:
    torch.manual_seed(0)
    return DenoisingAutoencoder(ConvAutoencoder(base_channels=4), **options)


@pytest.mark.parametrize("kind, level", [("gaussian", 0.2), ("masking", 0.5), ("salt_and_pepper", 0.3)])
def test_training_loss_is_squared_error_against_clean_images_of_the_generators_corruption(kind, level):
    method = small_method(corruption=kind, level=level)
    batch = make_batch()
    loss = method.training_loss(batch)["loss"]

    clean = batch.images.float() / 255
    corrupted = corrupt(clean, kind, level, torch.Generator().manual_seed(1))  # same seed as the batch's generator
    reconstruction = method.autoencoder(corrupted).detach()
    total, count = 0.0, 0
    for value, target in zip(reconstruction.flatten().tolist(), clean.flatten().tolist()):
        total += (value - target) ** 2
        count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    against_corrupted = ((reconstruction - corrupted) ** 2).mean().item()
    assert abs(loss.item() - against_corrupted) > 1e-4, "the target must be the clean image, not the corrupted one"


def test_corruption_is_drawn_from_the_batch_generator_and_changes_every_step():
    method = small_method()
    clean = make_batch().images.float() / 255
    generator = torch.Generator().manual_seed(5)
    first, second = method.corrupt(clean, generator), method.corrupt(clean, generator)
    assert not torch.equal(first == 0, second == 0), "each call must draw a new masking pattern"
    assert torch.equal(first, corrupt(clean, "masking", 0.5, torch.Generator().manual_seed(5)))
    same = method.training_loss(make_batch(generator_seed=7))["loss"]
    again = method.training_loss(make_batch(generator_seed=7))["loss"]
    other = method.training_loss(make_batch(generator_seed=8))["loss"]
    assert same.item() == again.item()
    assert same.item() != other.item()


def test_logged_corrupted_error_is_the_identity_baseline():
    method = small_method(corruption="gaussian", level=0.1)
    batch = make_batch()
    logged = method.training_loss(batch)["corrupted_error"]
    clean = batch.images.float() / 255
    corrupted = corrupt(clean, "gaussian", 0.1, torch.Generator().manual_seed(1))
    assert logged == pytest.approx(((corrupted - clean) ** 2).mean().item(), rel=1e-6)


def test_autoencoder_features_are_the_pooled_code():
    autoencoder = ConvAutoencoder(base_channels=4)
    encoder = AutoencoderFeatures(autoencoder).eval()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = encoder(images)
    code = autoencoder.encode(images)
    assert encoder.feature_dim == 16 and features.shape == (3, 16)
    for n in range(3):
        for c in range(16):
            expected = sum(code[n, c, i, j].item() for i in range(4) for j in range(4)) / 16
            assert features[n, c].item() == pytest.approx(expected, abs=1e-5)


def test_one_step_of_shared_training_changes_the_encoder():
    method = small_method()
    history, changed = train_one_step(method, make_batch(n=8).images, watched=method.encoder,
                                      optimizer="adamw", lr=1e-2)
    assert "corrupted_error" in history.steps[0]
    assert any(changed)


def test_bad_inputs_stop_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown corruption 'blur'"):
        DenoisingAutoencoder(corruption="blur")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        DenoisingAutoencoder(corruption="masking", level=1.0)
    with pytest.raises(ValueError, match="must be >= 0"):
        DenoisingAutoencoder(corruption="gaussian", level=-0.1)
    with pytest.raises(ValueError, match="must be a sslbook.autoencoder.ConvAutoencoder"):
        AutoencoderFeatures(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="same shape"):
        denoising_loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16))


def test_neighbour_average_fill_matches_a_loop_over_dropped_pixels():
    clean = 0.05 + 0.9 * torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    corrupted = corrupt(clean, "masking", 0.5, torch.Generator().manual_seed(1))
    corrupted[0, :, 0:2, 0:2] = 0.0  # a dropped corner pixel whose neighbours are all dropped
    filled = neighbour_average_fill(corrupted)
    for n in range(2):
        for i in range(6):
            for j in range(6):
                if (corrupted[n, :, i, j] != 0).any():
                    assert torch.equal(filled[n, :, i, j], corrupted[n, :, i, j])
                    continue
                kept = [(a, b) for a in range(max(0, i - 1), min(6, i + 2)) for b in range(max(0, j - 1), min(6, j + 2))
                        if (corrupted[n, :, a, b] != 0).any()]
                for c in range(3):
                    expected = sum(corrupted[n, c, a, b].item() for a, b in kept) / len(kept) if kept else 0.0
                    assert filled[n, c, i, j].item() == pytest.approx(expected, abs=1e-6)
    assert (filled[0, :, 0, 0] == 0).all()
    with pytest.raises(ValueError, match="must be a float tensor"):
        neighbour_average_fill(torch.zeros(3, 6, 6))
