"""Tests of sslbook.methods.barlow_twins against C and L_BT written out with loops (the survey's formula)."""

import math

import pytest
import torch

from sslbook.augment import make_views
from sslbook.methods.barlow_twins import BarlowTwins
from sslbook.networks import SmallCNN
from sslbook.train import Batch

from one_step import train_one_step


def tiny_method(lambd: float = 0.05) -> BarlowTwins:
    torch.manual_seed(0)
    return BarlowTwins(SmallCNN(width=4, feature_dim=8), projection_dim=5, hidden_dim=6, lambd=lambd)


def random_images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def loop_cross_correlation(z_a: list[list[float]], z_b: list[list[float]]) -> list[list[float]]:
    """C_ij = sum_b z^A_bi z^B_bj / (sqrt(sum_b (z^A_bi)^2) sqrt(sum_b (z^B_bj)^2)), on mean-centred z."""
    n, d = len(z_a), len(z_a[0])

    def centred(z):
        means = [sum(row[i] for row in z) / n for i in range(d)]
        return [[row[i] - means[i] for i in range(d)] for row in z]

    a, b = centred(z_a), centred(z_b)
    c = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(d):
            numerator = sum(a[k][i] * b[k][j] for k in range(n))
            c[i][j] = numerator / (math.sqrt(sum(a[k][i] ** 2 for k in range(n)))
                                   * math.sqrt(sum(b[k][j] ** 2 for k in range(n))))
    return c


def loop_loss(c: list[list[float]], lambd: float) -> float:
    d = len(c)
    on_diagonal = sum((1 - c[i][i]) ** 2 for i in range(d))
    off_diagonal = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if j != i)
    return on_diagonal + lambd * off_diagonal


def test_training_loss_matches_the_loop_over_c():
    method = tiny_method()
    images = random_images(6, seed=1)
    batch = Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6), torch.Generator().manual_seed(7))
    loss = method.training_loss(batch)
    view_a, view_b = make_views(images, method.recipe, n_views=2, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        z_a, z_b = method.project(view_a), method.project(view_b)
    expected = loop_loss(loop_cross_correlation(z_a.double().tolist(), z_b.double().tolist()), 0.05)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_correlation_matrix_matches_the_loop_and_restores_the_mode():
    method = tiny_method()
    images = random_images(8, seed=2)
    c = method.correlation_matrix(images, torch.Generator().manual_seed(3))
    assert c.shape == (5, 5) and method.training
    method.eval()
    view_a, view_b = make_views(images, method.recipe, n_views=2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z_a, z_b = method.project(view_a), method.project(view_b)
    expected = loop_cross_correlation(z_a.double().tolist(), z_b.double().tolist())
    torch.testing.assert_close(c.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-4, atol=1e-5)


def test_one_training_step_with_the_shared_loop():
    _, changed = train_one_step(tiny_method(), random_images(16, seed=0), batch_size=8)
    assert any(changed)


def test_bad_inputs_stop_with_clear_messages():
    with pytest.raises(ValueError, match="lambd must be >= 0"):
        BarlowTwins(SmallCNN(4, 8), lambd=-0.1)
    method = tiny_method()
    with pytest.raises(ValueError, match="at least 2 images"):
        method.training_loss(Batch(random_images(1, 0), torch.zeros(1, dtype=torch.long), torch.arange(1),
                                   torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        method.correlation_matrix(torch.zeros(4, 1, 32, 32))


def test_the_loss_scale_multiplies_the_loss_and_full_follows_solo_learns_recipe():
    images = random_images(8, seed=3)
    batch = Batch(images, torch.zeros(8, dtype=torch.long), torch.arange(8), torch.Generator().manual_seed(1))
    plain = tiny_method().training_loss(batch)
    scaled_method = tiny_method()
    scaled_method.loss_scale = 0.1
    batch = Batch(images, torch.zeros(8, dtype=torch.long), torch.arange(8), torch.Generator().manual_seed(1))
    assert torch.allclose(scaled_method.training_loss(batch), 0.1 * plain)
    with pytest.raises(ValueError, match="loss_scale must be > 0"):
        BarlowTwins(SmallCNN(width=4, feature_dim=8), loss_scale=0.0)

    from sslbook import registry
    from sslbook.augment import byol_cifar, simclr_cifar
    from sslbook.profiles import choose_profile

    full = choose_profile("full", verbose=False)
    entry = registry.get("barlow_twins")
    assert entry.settings_in(full)["views"] == "asymmetric" and entry.settings_in(full)["loss_scale"] == 0.1
    config = full.train_config(**entry.training_in(full))
    assert (config.optimizer, config.lr, config.batch_size, config.weight_decay) == ("lars", 0.3, 256, 1e-4)
    quick = choose_profile("quick", verbose=False)
    assert entry.build(quick, None, **entry.settings_in(quick)).recipe == simclr_cifar()  # no data needed
    small_full = {**entry.settings_in(full), "projection_dim": 8, "hidden_dim": 8}
    assert entry.build(full, None, **small_full).recipe == byol_cifar()
