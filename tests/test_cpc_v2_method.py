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
from sslbook.networks import SmallCNN
from sslbook.train import Batch


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
