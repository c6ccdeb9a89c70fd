"""Tests of sslbook.methods.cpc_v2: the patch grid, the causal context, the predictions and one training step."""

import pytest
import torch

from sslbook.augment import ViewRecipe
from sslbook.methods.cpc_v2 import (
    DIRECTIONS,
    CausalRowConv2d,
    ContextNetwork,
    CPCv2,
    PatchGridEncoder,
    patch_grid,
)
from sslbook.data import ImageData
from sslbook.networks import SmallCNN
from sslbook.runs import describe_run
from sslbook.train import Batch, TrainConfig


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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


@pytest.mark.parametrize("normalisation", ["batch", "layer"])
def test_cpc_v2_one_training_step(normalisation):
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn(), context_dim=8, prediction_steps=(2, 3), n_candidates=16,
                  patch_recipe=ViewRecipe(output_size=8, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)),
                  normalisation=normalisation)
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


def patch_latents_in_training_mode(model: CPCv2, images: torch.Tensor) -> torch.Tensor:
    """z (N, D, R, S) of the patches of ``images``, with the batch statistics of these patches only."""
    return model.train().encoder.latent_grid(images)


def test_layer_norm_replaces_every_batch_norm_by_a_per_patch_group_norm():
    torch.manual_seed(0)
    batch_norms = [m for m in tiny_cnn().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model = CPCv2(tiny_cnn(), normalisation="layer")
    group_norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert [(m.num_groups, m.num_channels) for m in group_norms] == [(1, m.num_features) for m in batch_norms]
    x = torch.randn(3, 4, 5, 5)  # GroupNorm(1, C) standardises each sample over all of (C, H, W)
    mean, var = x.mean(dim=(1, 2, 3), keepdim=True), x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(group_norms[0](x), (x - mean) / (var + group_norms[0].eps).sqrt(), rtol=1e-5, atol=1e-5)


def test_layer_norm_latents_do_not_depend_on_the_other_patches_or_images():
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn(), normalisation="layer")
    images, others = torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32)
    z = patch_latents_in_training_mode(model, images)
    torch.testing.assert_close(patch_latents_in_training_mode(model, torch.cat([images[:1], others]))[0], z[0])
    for i, j in [(0, 0), (3, 5), (6, 6)]:  # the patch alone, a batch of one
        alone = model.encoder.patch_encoder(images[1:, :, 4 * i:4 * i + 8, 4 * j:4 * j + 8])
        torch.testing.assert_close(alone[0], z[1, :, i, j], rtol=1e-5, atol=1e-6)


def test_batch_norm_latents_depend_on_the_other_images_in_training_mode():
    torch.manual_seed(0)
    model = CPCv2(tiny_cnn())
    images, others = torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32)
    z = patch_latents_in_training_mode(model, images)
    z_with_others = patch_latents_in_training_mode(model, torch.cat([images[:1], others]))
    assert not torch.allclose(z_with_others[0], z[0], atol=1e-3)


def test_batch_normalisation_is_the_default_run_unchanged():
    data = ImageData(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
    described = []
    for options in ({}, {"normalisation": "batch"}, {"normalisation": "layer"}):
        torch.manual_seed(0)
        described.append(describe_run(CPCv2(tiny_cnn(), **options), TrainConfig(), data))
    assert described[1] == described[0]  # the same settings, modules and weights: the same fingerprint
    assert described[2]["architecture"] != described[0]["architecture"]


def test_cpc_v2_rejects_bad_settings():
    with pytest.raises(ValueError, match="prediction_steps"):
        CPCv2(tiny_cnn(), prediction_steps=(0, 2))
    with pytest.raises(ValueError, match="n_candidates must be >= 2"):
        CPCv2(tiny_cnn(), n_candidates=1)
    with pytest.raises(ValueError, match="directions must be distinct names"):
        CPCv2(tiny_cnn(), directions=("down", "diagonal"))
    with pytest.raises(ValueError, match="output_size=8"):
        CPCv2(tiny_cnn(), patch_recipe=ViewRecipe(output_size=32))
    with pytest.raises(ValueError, match="normalisation must be one of"):
        CPCv2(tiny_cnn(), normalisation="group")
    without_batch_norm = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 8))
    without_batch_norm.feature_dim = 8
    with pytest.raises(ValueError, match="has none"):
        CPCv2(without_batch_norm, normalisation="layer")
    model = CPCv2(tiny_cnn(), prediction_steps=(2, 7), n_candidates=4, directions=("down",))
    with pytest.raises(ValueError, match="more rows"):
        model.predictions(torch.zeros(1, 8, 7, 7), "down")
    with pytest.raises(ValueError, match="unknown direction"):
        model.predictions(torch.zeros(1, 8, 7, 7), "up")
