"""Tests of sslbook.methods.context_encoder: inpainting with an optional adversarial term."""

import pytest
import torch

from sslbook.autoencoder import ConvAutoencoder
from sslbook.losses import adversarial_discriminator_loss, adversarial_generator_loss
from sslbook.masking import apply_mask, random_block_masks
from sslbook.methods.context_encoder import ContextEncoder, harmonic_fill
from sslbook.train import Batch

from one_step import train_one_step


def make_batch(n: int = 2, seed: int = 0, generator_seed: int = 1) -> Batch:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(generator_seed)
    return Batch(images, torch.zeros(n, dtype=torch.long), torch.arange(n), generator)


def small_method(**options) -> ContextEncoder:
    torch.manual_seed(0)
    return ContextEncoder(ConvAutoencoder(base_channels=4), **options)


def brute_force_loss(prediction, target, hidden, overlap_weight):
    """Weighted mean of squared errors: weight 1 in the hole, overlap_weight within one pixel of it."""
    n, channels, height, width = len(target), len(target[0]), len(target[0][0]), len(target[0][0][0])
    total, weight_sum = 0.0, 0.0
    for k in range(n):
        for i in range(height):
            for j in range(width):
                if hidden[k][i][j]:
                    weight = 1.0
                elif overlap_weight is not None and any(
                    hidden[k][a][b]
                    for a in range(max(0, i - 1), min(height, i + 2))
                    for b in range(max(0, j - 1), min(width, j + 2))
                ):
                    weight = overlap_weight
                else:
                    continue
                for c in range(channels):
                    total += weight * (prediction[k][c][i][j] - target[k][c][i][j]) ** 2
                    weight_sum += weight
    return total / weight_sum


@pytest.mark.parametrize("mask_kind, overlap_weight", [("centre", 10.0), ("random_blocks", None)])
def test_training_loss_matches_a_pixel_loop_over_the_hole(mask_kind, overlap_weight):
    method = small_method(mask_kind=mask_kind, overlap_weight=overlap_weight)
    batch = make_batch()
    loss = method.training_loss(batch)["loss"]

    images = batch.images.float() / 255
    mask = method.masks(2, 32, 32, torch.Generator().manual_seed(1), "cpu")
    prediction = method.autoencoder(apply_mask(images, mask)).detach()
    expected = brute_force_loss(prediction.tolist(), images.tolist(), mask.tolist(), overlap_weight)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_centre_mask_hides_the_central_quarter_for_every_image():
    mask = small_method().masks(3, 32, 32, None, "cpu")
    for k in range(3):
        for i in range(32):
            for j in range(32):
                assert bool(mask[k, i, j]) == (8 <= i < 24 and 8 <= j < 24)


def test_random_blocks_are_drawn_per_batch_from_the_generator():
    method = small_method(mask_kind="random_blocks", block_size=8, n_blocks=3)
    generator = torch.Generator().manual_seed(4)
    first = method.masks(4, 32, 32, generator, "cpu")
    second = method.masks(4, 32, 32, generator, "cpu")
    assert not torch.equal(first, second), "each batch must draw new blocks"
    assert not torch.equal(first[0], first[1]), "each image must get its own blocks"
    assert torch.equal(first, random_block_masks(4, 32, 32, 8, 3, torch.Generator().manual_seed(4)))
    same = method.training_loss(make_batch(generator_seed=6))["loss"].item()
    again = method.training_loss(make_batch(generator_seed=6))["loss"].item()
    other = method.training_loss(make_batch(generator_seed=9))["loss"].item()
    assert same == again and same != other


def test_loss_ignores_prediction_errors_outside_the_hole():
    method = small_method(overlap_weight=None)
    batch = make_batch()
    outputs = {}

    def keep_prediction(module, inputs, output):
        output.retain_grad()
        outputs["prediction"] = output

    method.autoencoder.register_forward_hook(keep_prediction)
    method.training_loss(batch)["loss"].backward()
    gradient = outputs["prediction"].grad
    hidden = method.masks(2, 32, 32, None, "cpu")[:, None].expand_as(gradient)
    assert gradient[~hidden].abs().max() == 0
    assert gradient[hidden].abs().min() > 0


def test_adversarial_terms_train_each_player_on_its_own_loss():
    method = small_method(adversarial=True, overlap_weight=None)
    batch = make_batch(n=4)
    logs = method.training_loss(batch)
    assert set(logs) == {"loss", "reconstruction", "adversarial", "discriminator"}
    logs["loss"].backward()
    discriminator_grads = [p.grad.clone() for p in method.discriminator.parameters()]
    autoencoder_grads = [p.grad.clone() for p in method.autoencoder.parameters()]
    method.zero_grad()

    # Independent computation: D learns only from its own loss on detached completions,
    # F from 0.999 * L_rec + 0.001 * L_adv.
    images = batch.images.float() / 255
    mask = method.masks(4, 32, 32, None, "cpu")
    prediction = method.autoencoder(apply_mask(images, mask))
    region = mask[:, None].float()  # D sees only the hidden region, of the real image and of F's fill
    discriminator = method.discriminator
    adversarial_discriminator_loss(discriminator(region * images),
                                   discriminator((region * prediction).detach())).backward()
    for got, expected in zip(discriminator_grads, [p.grad for p in discriminator.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    method.zero_grad()
    hidden = mask[:, None].expand_as(images).float()
    reconstruction = (hidden * (prediction - images) ** 2).sum() / hidden.sum()
    with torch.no_grad():
        weights = {name: p.clone() for name, p in discriminator.named_parameters()}
    fake_logits = torch.func.functional_call(discriminator, weights, (region * prediction,))
    (0.999 * reconstruction + 0.001 * adversarial_generator_loss(fake_logits)).backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in discriminator.parameters())
    for got, expected in zip(autoencoder_grads, [p.grad for p in method.autoencoder.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-6)


def test_one_step_of_shared_training_with_the_adversarial_term():
    method = small_method(adversarial=True, mask_kind="random_blocks")
    history, changed = train_one_step(method, make_batch(n=8).images, watched=method.encoder,
                                      optimizer="adamw", lr=1e-2)
    assert {"reconstruction", "adversarial", "discriminator"} <= set(history.steps[0])
    assert any(changed)


def test_bad_inputs_stop_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown mask_kind 'ring'"):
        ContextEncoder(mask_kind="ring")
    with pytest.raises(ValueError, match=r"fraction .* must be in \(0, 1\)"):
        ContextEncoder(centre_fraction=1.5)
    with pytest.raises(ValueError, match="block_size must be in"):
        ContextEncoder(mask_kind="random_blocks", block_size=40)
    with pytest.raises(ValueError, match="n_blocks must be >= 1"):
        ContextEncoder(mask_kind="random_blocks", n_blocks=0)
    with pytest.raises(ValueError, match="overlap_weight must be > 0"):
        ContextEncoder(overlap_weight=-1.0)
    with pytest.raises(ValueError, match="loss weights must be >= 0"):
        ContextEncoder(adversarial=True, adversarial_weight=-0.1)


def test_harmonic_fill_one_sweep_matches_a_neighbour_average_loop():
    images = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[0:3, 2:5] = True  # touches the top border, where padding replicates the edge row
    filled = harmonic_fill(images, mask, iterations=1)
    start = apply_mask(images, mask)
    for c in range(3):
        for i in range(6):
            for j in range(6):
                if not mask[i, j]:
                    assert filled[0, c, i, j] == images[0, c, i, j]
                    continue
                neighbours = [start[0, c, min(max(a, 0), 5), min(max(b, 0), 5)].item()
                              for a, b in [(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)]]
                assert filled[0, c, i, j].item() == pytest.approx(sum(neighbours) / 4, abs=1e-6)


def test_harmonic_fill_recovers_a_linear_ramp_inside_the_hole():
    rows = torch.arange(12, dtype=torch.float64)[:, None]
    cols = torch.arange(12, dtype=torch.float64)[None, :]
    ramp = (0.1 + 0.03 * rows + 0.04 * cols).expand(2, 3, 12, 12)  # its discrete Laplacian is zero
    hole = torch.zeros(12, 12, dtype=torch.bool)
    hole[3:8, 4:10] = True
    filled = harmonic_fill(ramp, hole, iterations=150)
    assert (filled[:, :, 3:8, 4:10] - ramp[:, :, 3:8, 4:10]).abs().max() < 1e-6
    with pytest.raises(ValueError, match="iterations must be a positive int"):
        harmonic_fill(ramp, hole, iterations=0)


def test_the_discriminator_never_sees_the_context():
    method = small_method(adversarial=True, overlap_weight=None)
    seen = []
    method.discriminator.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    batch = make_batch(n=4)
    method.training_loss(batch)
    outside = ~method.masks(4, 32, 32, None, "cpu")[:, None].expand(4, 3, 32, 32)
    real = batch.images.float() / 255
    # F's fill (for F's term), the real region and F's fill again (for D's term)
    assert len(seen) == 3 and all(view[outside].abs().max() == 0 for view in seen)
    assert torch.equal(seen[1][~outside], real[~outside])
