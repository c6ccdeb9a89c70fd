"""Tests of sslbook.methods.cmc: the Lab views, the view encoders and the two-sided loss written out with loops."""

import math

import pytest
import torch

from sslbook.augment import augment
from sslbook import losses
from sslbook.methods.cmc import CMC, LabViewEncoder, lab_views, scaled_lab
from sslbook.networks import SmallCNN
from sslbook.train import Batch

from one_step import train_one_step

# sRGB -> CIE Lab (D65) reference values: white, black and the sRGB primaries' red.
REFERENCE_LAB = [((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)), ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
                 ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032))]


def tiny_method(temperature: float = 0.5) -> CMC:
    torch.manual_seed(0)
    return CMC(SmallCNN(width=4, feature_dim=8, in_channels=1), SmallCNN(width=4, feature_dim=6, in_channels=2),
               embedding_dim=5, temperature=temperature)


def random_images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("rgb, lab", REFERENCE_LAB)
def test_lab_views_are_scaled_lab_channels(rgb, lab):
    image = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    lightness, colour = lab_views(image)
    assert lightness.shape == (1, 1, 2, 2) and colour.shape == (1, 2, 2, 2)
    torch.testing.assert_close(lightness, torch.full_like(lightness, lab[0] / 50 - 1), atol=1e-4, rtol=0)
    expected_colour = torch.tensor([lab[1] / 110, lab[2] / 110], dtype=torch.float64).view(1, 2, 1, 1)
    torch.testing.assert_close(colour, expected_colour.expand_as(colour), atol=1e-4, rtol=0)


def test_view_encoders_and_their_concatenation():
    method = tiny_method().eval()
    images = random_images(3, seed=1).float() / 255
    lightness, colour = lab_views(images)
    with torch.no_grad():
        l_features = method.l_encoder(images)
        ab_features = method.ab_encoder(images)
        torch.testing.assert_close(l_features, method.l_encoder.encoder(lightness))
        torch.testing.assert_close(ab_features, method.ab_encoder.encoder(colour))
        both = method.encoder(images)
    assert method.encoder.feature_dim == 14 and both.shape == (3, 14)
    torch.testing.assert_close(both, torch.cat([l_features, ab_features], dim=1))


def loop_two_sided_loss(z_l: list[list[float]], z_ab: list[list[float]], temperature: float) -> float:
    """Mean over i of -log softmax_k(f(v1_i).f(v2_k)/tau)[i] - log softmax_k(f(v2_i).f(v1_k)/tau)[i]."""
    def unit(v):
        norm = math.sqrt(sum(a * a for a in v))
        return [a / norm for a in v]

    z_l, z_ab = [unit(v) for v in z_l], [unit(v) for v in z_ab]
    n, total = len(z_l), 0.0
    for i in range(n):
        for anchor, others in ((z_l, z_ab), (z_ab, z_l)):
            scores = [sum(a * b for a, b in zip(anchor[i], others[k])) / temperature for k in range(n)]
            total += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    return total / n


def test_training_loss_matches_the_loop():
    method = tiny_method(temperature=0.3)
    images = random_images(5, seed=2)
    batch = Batch(images, torch.zeros(5, dtype=torch.long), torch.arange(5), torch.Generator().manual_seed(4))
    loss = method.training_loss(batch)
    views = augment(images, method.recipe, torch.Generator().manual_seed(4))
    lightness, colour = lab_views(views)
    with torch.no_grad():
        z_l = method.heads[0](method.l_encoder.encoder(lightness))
        z_ab = method.heads[1](method.ab_encoder.encoder(colour))
    expected = loop_two_sided_loss(z_l.double().tolist(), z_ab.double().tolist(), 0.3)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def three_view_method(graph: str) -> CMC:
    torch.manual_seed(0)
    return CMC(*(SmallCNN(width=4, feature_dim=6, in_channels=1) for _ in range(3)), views=("L", "a", "b"),
               embedding_dim=5, temperature=0.4, graph=graph)


@pytest.mark.parametrize("graph, pairs", [("core", [(0, 1), (0, 2)]), ("full", [(0, 1), (0, 2), (1, 2)])])
def test_three_views_contrast_the_pairs_of_their_graph(graph, pairs):
    method = three_view_method(graph)
    images = random_images(5, seed=3)
    batch = Batch(images, torch.zeros(5, dtype=torch.long), torch.arange(5), torch.Generator().manual_seed(4))
    loss = method.training_loss(batch)
    lab = scaled_lab(augment(images, method.recipe, torch.Generator().manual_seed(4)))
    with torch.no_grad():  # view m is channel m of the scaled Lab image: L, a, b
        z = [method.heads[m](method.view_encoders[m].encoder(lab[:, m:m + 1])).double().tolist() for m in range(3)]
    expected = sum(loop_two_sided_loss(z[i], z[j], 0.4) for i, j in pairs)
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert method.encoder.feature_dim == 18
    with torch.no_grad():
        torch.testing.assert_close(method.view_encoder("b")(images.float() / 255),
                                   method.view_encoders[2].encoder(scaled_lab(images.float() / 255)[:, 2:]))


def test_one_training_step_with_the_shared_loop():
    _, changed = train_one_step(tiny_method(), random_images(16, seed=0), batch_size=8)
    assert all(changed)  # both encoders and both heads learn


def test_bad_inputs_stop_with_clear_messages():
    with pytest.raises(ValueError, match="view must be one of"):
        LabViewEncoder(SmallCNN(4, 8, in_channels=1), "rgb")
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, H, W\)"):
        lab_views(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="sharing no channel"):
        CMC(*(SmallCNN(4, 8, in_channels=c) for c in (1, 2, 1)), views=("L", "ab", "a"))
    with pytest.raises(ValueError, match="one backbone per view"):
        CMC(SmallCNN(4, 8, in_channels=1), SmallCNN(4, 8, in_channels=1), views=("L", "a", "b"))
    with pytest.raises(ValueError, match="graph must be one of"):
        CMC(SmallCNN(4, 8, in_channels=1), SmallCNN(4, 8, in_channels=2), graph="star")
    with pytest.raises(ValueError, match="this CMC has the views"):
        tiny_method().view_encoder("a")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        CMC(SmallCNN(4, 8, in_channels=1), SmallCNN(4, 8, in_channels=2), temperature=0.0)
