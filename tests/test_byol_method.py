"""Tests of sslbook.methods.byol: the cosine decay schedule, the EMA update, the collapse
measure, the symmetrised loss and a one-step smoke training."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslbook.augment import make_views
from sslbook.data import ImageData
from sslbook.methods.byol import BYOL, cosine_decay_rate, ema_update, normalised_std
from sslbook.networks import SmallCNN
from sslbook.train import Batch, TrainConfig, train


def tiny_byol(**options) -> BYOL:
    torch.manual_seed(0)
    return BYOL(SmallCNN(width=4, feature_dim=8), projection_dim=6, hidden_dim=10, **options)


def random_images(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def linear_with(weights: list[float]) -> nn.Linear:
    layer = nn.Linear(len(weights), 1, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights], dtype=torch.float64))
    return layer


# ------------------------------------------------------------------ schedule


@pytest.mark.parametrize("progress", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("tau_base", [0.0, 0.9, 0.996])
def test_cosine_decay_rate_matches_the_formula(progress, tau_base):
    expected = 1 - (1 - tau_base) * (math.cos(math.pi * progress) + 1) / 2
    assert cosine_decay_rate(progress, tau_base) == pytest.approx(expected, abs=1e-15)


def test_cosine_decay_rate_end_points_and_middle():
    assert cosine_decay_rate(0.0, 0.99) == pytest.approx(0.99)  # tau_base at k = 0
    assert cosine_decay_rate(1.0, 0.99) == pytest.approx(1.0)  # 1 at k = K
    assert cosine_decay_rate(0.5, 0.99) == pytest.approx(0.995)  # half-way: 1 - 0.01 / 2


@pytest.mark.parametrize("progress, tau_base, match", [
    (1.5, 0.99, r"progress \(k/K\) must lie in \[0, 1\]"),
    (-0.1, 0.99, r"progress \(k/K\) must lie in \[0, 1\]"),
    (0.5, 1.2, r"tau_base must lie in \[0, 1\]"),
    (0.5, -0.5, r"tau_base must lie in \[0, 1\]"),
])
def test_cosine_decay_rate_rejects_values_outside_the_unit_interval(progress, tau_base, match):
    with pytest.raises(ValueError, match=match):
        cosine_decay_rate(progress, tau_base)


# ------------------------------------------------------------------ EMA update


def test_ema_update_exact_values_after_one_and_two_updates():
    target, online = linear_with([1.0, 2.0]), linear_with([3.0, -1.0])
    ema_update(target, online, 0.9)  # xi = 0.9 * [1, 2] + 0.1 * [3, -1]
    assert target.weight.flatten().tolist() == pytest.approx([1.2, 1.7], abs=1e-12)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[5.0, 0.0]], dtype=torch.float64))
    ema_update(target, online, 0.8)  # xi = 0.8 * [1.2, 1.7] + 0.2 * [5, 0]
    assert target.weight.flatten().tolist() == pytest.approx([1.96, 1.36], abs=1e-12)
    assert online.weight.tolist() == [[5.0, 0.0]]  # the online network is not touched


def test_two_scheduled_updates_match_values_worked_out_by_hand():
    # tau_base = 0.9, K = 4, target 0 following an online weight 1:
    # k = 1: tau = 1 - 0.1 (cos(pi/4) + 1) / 2 = 0.91464466..., xi = 1 - tau = 0.08535534...
    # k = 2: tau = 1 - 0.1 (cos(pi/2) + 1) / 2 = 0.95,          xi = 0.95 xi + 0.05 = 0.13108757...
    target, online = linear_with([0.0]), linear_with([1.0])
    tau = cosine_decay_rate(1 / 4, 0.9)
    assert tau == pytest.approx(0.9146446609406726, abs=1e-15)
    ema_update(target, online, tau)
    assert target.weight.item() == pytest.approx(0.0853553390593274, abs=1e-15)
    tau = cosine_decay_rate(2 / 4, 0.9)
    assert tau == pytest.approx(0.95, abs=1e-15)
    ema_update(target, online, tau)
    assert target.weight.item() == pytest.approx(0.13108757210636102, abs=1e-15)


def test_ema_update_with_tau_0_copies_and_with_tau_1_keeps():
    target, online = linear_with([1.0, 2.0]), linear_with([3.0, -1.0])
    ema_update(target, online, 1.0)
    assert target.weight.tolist() == [[1.0, 2.0]]
    ema_update(target, online, 0.0)
    assert target.weight.tolist() == [[3.0, -1.0]]


def test_ema_update_leaves_buffers_alone():
    target, online = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        online.running_mean.fill_(5.0)
        online.weight.fill_(3.0)
    ema_update(target, online, 0.5)
    assert target.running_mean.tolist() == [0.0, 0.0, 0.0]
    assert target.weight.tolist() == pytest.approx([2.0, 2.0, 2.0])


@pytest.mark.parametrize("tau", [-0.01, 1.01, float("nan")])
def test_ema_update_rejects_tau_outside_the_unit_interval(tau):
    with pytest.raises(ValueError, match=r"tau \(the EMA decay rate\) must lie in \[0, 1\]"):
        ema_update(linear_with([1.0]), linear_with([2.0]), tau)


def test_ema_update_rejects_mismatched_networks():
    with pytest.raises(ValueError, match="different parameters; build the target as copy.deepcopy"):
        ema_update(nn.Linear(2, 1), nn.Sequential(nn.Linear(2, 1)), 0.5)
    with pytest.raises(ValueError, match=r"shape \(1, 2\) in the target but \(1, 3\) online"):
        ema_update(nn.Linear(2, 1), nn.Linear(3, 1), 0.5)


def test_after_step_follows_the_cosine_schedule_step_by_step():
    byol = tiny_byol(tau_base=0.9)
    online = [p.detach().clone() for p in [*byol.encoder.parameters(), *byol.projector.parameters()]]
    target = [p.detach().clone() for p in [*byol.target_encoder.parameters(), *byol.target_projector.parameters()]]
    with torch.no_grad():  # make online and target differ, as after an optimiser step
        for parameter in [*byol.encoder.parameters(), *byol.projector.parameters()]:
            parameter.add_(1.0)
    online = [p + 1.0 for p in online]
    for k, total in [(1, 4), (2, 4)]:
        tau = 1 - (1 - 0.9) * (math.cos(math.pi * k / total) + 1) / 2
        byol.after_step(k / total)
        assert byol.tau == pytest.approx(tau)
        target = [tau * xi + (1 - tau) * theta for xi, theta in zip(target, online)]
        moved = [p for p in [*byol.target_encoder.parameters(), *byol.target_projector.parameters()]]
        assert len(moved) == len(target)
        for got, expected in zip(moved, target):
            torch.testing.assert_close(got, expected)
    assert 0.9 < byol.tau < 1  # k = 2 of 4: half-way up the cosine


def test_after_step_without_schedule_keeps_tau_base():
    byol = tiny_byol(tau_base=0.0, cosine_schedule=False)
    with torch.no_grad():
        for parameter in byol.encoder.parameters():
            parameter.add_(0.5)
    byol.after_step(0.5)
    assert byol.tau == 0.0
    for xi, theta in zip(byol.target_encoder.parameters(), byol.encoder.parameters()):
        torch.testing.assert_close(xi, theta)  # tau = 0: the target is a copy of the online network


def test_byol_rejects_tau_base_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"tau_base must lie in \[0, 1\], got 1.5; pass a value such as 0.99"):
        BYOL(SmallCNN(width=4, feature_dim=8), tau_base=1.5)


# ------------------------------------------------------------------ collapse measure


def test_normalised_std_matches_a_loop():
    torch.manual_seed(0)
    z = torch.randn(6, 4, dtype=torch.float64)
    rows = [[value / math.sqrt(sum(v * v for v in row)) for value in row] for row in z.tolist()]
    stds = []
    for d in range(4):
        column = [row[d] for row in rows]
        mean = sum(column) / len(column)
        stds.append(math.sqrt(sum((value - mean) ** 2 for value in column) / len(column)))
    assert normalised_std(z).item() == pytest.approx(sum(stds) / 4, rel=1e-6)


def test_normalised_std_is_zero_when_collapsed_and_about_one_over_sqrt_d_when_spread():
    collapsed = torch.tensor([[1.0, 2.0, 3.0]]).repeat(10, 1) * torch.arange(1, 11).unsqueeze(1)
    assert normalised_std(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    spread = torch.randn(4000, 64)
    assert normalised_std(spread).item() == pytest.approx(1 / math.sqrt(64), rel=0.03)


def test_normalised_std_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"z must have shape \(N, d\) with N >= 2"):
        normalised_std(torch.randn(5))
    with pytest.raises(ValueError, match=r"z must have shape \(N, d\) with N >= 2"):
        normalised_std(torch.randn(1, 5))


# ------------------------------------------------------------------ loss and training


def test_training_loss_is_the_symmetrised_cosine_loss_with_a_detached_target():
    byol = tiny_byol()
    with torch.no_grad():  # a target different from the online network
        for parameter in byol.target_projector.parameters():
            parameter.mul_(0.5)
    images = random_images(6)
    batch = Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6), torch.Generator().manual_seed(3))
    output = byol.training_loss(batch)

    first, second = make_views(images, byol.recipes, n_views=2, generator=torch.Generator().manual_seed(3))
    views = torch.cat([first, second])
    with torch.no_grad():
        z = byol.projector(byol.encoder(views))
        p = byol.predictor(z)
        z_target = byol.target_projector(byol.target_encoder(views))
    n, expected = 6, 0.0
    for i in range(n):  # 2 - 2 cos for each direction: p of view 1 against target of view 2, and back
        expected += (2 - 2 * F.cosine_similarity(p[i], z_target[n + i], dim=0).item()) / n
        expected += (2 - 2 * F.cosine_similarity(p[n + i], z_target[i], dim=0).item()) / n
    assert output["loss"].item() == pytest.approx(expected, rel=1e-4)
    assert output["std"] == pytest.approx(normalised_std(z).item(), rel=1e-4)

    output["loss"].backward()
    assert all(p.grad is None for p in byol.target_encoder.parameters())
    assert all(p.grad is not None for p in byol.predictor.parameters())


def test_without_predictor_the_predictor_is_the_identity():
    byol = tiny_byol(use_predictor=False)
    assert isinstance(byol.predictor, nn.Identity)
    assert sum(p.numel() for p in byol.predictor.parameters()) == 0


@pytest.mark.parametrize("options", [{}, {"use_predictor": False}])
def test_one_step_smoke_training(options):
    byol = tiny_byol(**options)
    target_before = copy.deepcopy(byol.target_encoder.state_dict())
    data = ImageData(random_images(8), torch.arange(8) % 2, ["a", "b"])
    history = train(byol, data, TrainConfig(epochs=1, batch_size=4, optimizer="adamw", lr=1e-3, max_steps=1),
                    device="cpu", progress=False)
    assert len(history.steps) == 1 and math.isfinite(history.steps[0]["loss"])
    assert 0 <= history.steps[0]["std"] <= 1
    # after the only step k = K, so tau = 1 and the target keeps its weights; the online network moved
    assert byol.tau == 1.0
    for name, value in byol.target_encoder.state_dict().items():
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(value, target_before[name])
    assert any(not torch.equal(a, b) for a, b in zip(byol.encoder.parameters(), byol.target_encoder.parameters()))


def test_two_step_training_moves_the_target():
    byol = tiny_byol(tau_base=0.5)
    before = [p.detach().clone() for p in byol.target_projector.parameters()]
    data = ImageData(random_images(8), torch.arange(8) % 2, ["a", "b"])
    train(byol, data, TrainConfig(epochs=1, batch_size=4, optimizer="adamw", lr=1e-2, max_steps=2),
          device="cpu", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, byol.target_projector.parameters()))
