"""Tests of SimCLR's three loss variants (alignment-uniformity, debiased, hard negatives) against brute-force loops over anchors and negatives."""

import math

import pytest
import torch

from sslbook import losses
from sslbook.augment import make_views, simclr_cifar
from sslbook.losses import false_negative_mask, hard_negative_weights, oracle_nt_xent
from sslbook.methods.align_uniform import AlignUniform
from sslbook.methods.debiased import DebiasedSimCLR
from sslbook.methods.hard_negatives import HardNegativeSimCLR
from sslbook.methods.simclr import SimCLR
from sslbook.networks import SmallCNN
from sslbook.train import Batch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_pair(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return z1, z1 + 0.8 * torch.randn(n, d, generator=generator, dtype=torch.float64)


def unit_rows(z1: torch.Tensor, z2: torch.Tensor) -> list[list[float]]:
    rows = z1.double().tolist() + z2.double().tolist()
    return [[a / math.sqrt(sum(b * b for b in row)) for a in row] for row in rows]


def dot(u: list[float], v: list[float]) -> float:
    return sum(a * b for a, b in zip(u, v))


def positive_of(a: int, n: int) -> int:
    return (a + n) % (2 * n)


# ---------------------------------------------------------------------------
# False negatives and the oracle loss.
# ---------------------------------------------------------------------------


def test_false_negative_mask_matches_loop():
    labels = torch.tensor([0, 2, 0, 1, 2, 0])
    n = len(labels)
    expected = torch.zeros(2 * n, 2 * n, dtype=torch.bool)
    for a in range(2 * n):
        for k in range(2 * n):
            if k not in (a, positive_of(a, n)) and labels[a % n] == labels[k % n]:
                expected[a, k] = True
    assert torch.equal(false_negative_mask(labels), expected)
    # anchor 0 (class 0) has images 2 and 5 of its class, each in two views
    assert false_negative_mask(labels)[0].sum() == 4


def reference_oracle(z1, z2, labels, temperature):
    z, n = unit_rows(z1, z2), len(labels)
    classes = labels.tolist() * 2
    total = 0.0
    for a in range(2 * n):
        positive = math.exp(dot(z[a], z[positive_of(a, n)]) / temperature)
        true_negatives = [math.exp(dot(z[a], z[k]) / temperature) for k in range(2 * n)
                          if k not in (a, positive_of(a, n)) and classes[k] != classes[a]]
        n_negatives = 2 * n - 2
        total += -math.log(positive / (positive + n_negatives * sum(true_negatives) / len(true_negatives)))
    return total / (2 * n)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("labels, temperature", [([0, 1, 0, 2, 1], 0.5), ([3, 3, 1, 0], 0.1), ([0, 1], 1.0)])
def test_oracle_matches_loop(labels, temperature, device):
    labels = torch.tensor(labels)
    z1, z2 = random_pair(len(labels), 6, seed=len(labels))
    value = oracle_nt_xent(z1.to(device), z2.to(device), labels.to(device), temperature)
    assert value.device.type == device and value.dtype == torch.float64
    assert value.item() == pytest.approx(reference_oracle(z1, z2, labels, temperature), rel=1e-10)


def test_oracle_with_distinct_classes_is_nt_xent():
    z1, z2 = random_pair(6, 8, seed=1)
    torch.testing.assert_close(oracle_nt_xent(z1, z2, torch.arange(6), 0.3), losses.nt_xent(z1, z2, 0.3))


def test_oracle_differs_from_nt_xent_when_classes_repeat():
    z1, z2 = random_pair(6, 8, seed=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert abs(oracle_nt_xent(z1, z2, labels, 0.3).item() - losses.nt_xent(z1, z2, 0.3).item()) > 1e-3


# ---------------------------------------------------------------------------
# Hard-negative weights.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("beta, temperature", [(0.0, 0.5), (1.0, 0.5), (5.0, 0.2)])
def test_hard_negative_weights_match_loop(beta, temperature, device):
    z1, z2 = random_pair(4, 5, seed=2)
    z, n = unit_rows(z1, z2), 4
    expected = torch.zeros(2 * n, 2 * n, dtype=torch.float64)
    for a in range(2 * n):
        negatives = [k for k in range(2 * n) if k not in (a, positive_of(a, n))]
        normaliser = sum(math.exp(beta * dot(z[a], z[k]) / temperature) for k in negatives)
        for k in negatives:
            expected[a, k] = len(negatives) * math.exp(beta * dot(z[a], z[k]) / temperature) / normaliser
    weights = hard_negative_weights(z1.to(device), z2.to(device), temperature, beta)
    assert weights.device.type == device
    torch.testing.assert_close(weights.cpu(), expected)
    torch.testing.assert_close(weights.sum(dim=1).cpu(), torch.full((2 * n,), 2 * n - 2.0, dtype=torch.float64))


@pytest.mark.parametrize("beta, tau_plus", [(0.5, 0.0), (2.0, 0.1)])
def test_weights_reproduce_the_hard_negative_loss(beta, tau_plus):
    """Plugging the weights into the debiased g, one anchor at a time, gives losses.hard_negative_nt_xent."""
    temperature, n = 0.5, 5
    z1, z2 = random_pair(n, 7, seed=3)
    weights = hard_negative_weights(z1, z2, temperature, beta).tolist()
    z = unit_rows(z1, z2)
    total = 0.0
    for a in range(2 * n):
        positive = math.exp(dot(z[a], z[positive_of(a, n)]) / temperature)
        negatives = [k for k in range(2 * n) if k not in (a, positive_of(a, n))]
        weighted_mean = sum(weights[a][k] * math.exp(dot(z[a], z[k]) / temperature) for k in negatives) / len(negatives)
        g = max((weighted_mean - tau_plus * positive) / (1 - tau_plus), math.exp(-1 / temperature))
        total += -math.log(positive / (positive + len(negatives) * g))
    expected = total / (2 * n)
    assert losses.hard_negative_nt_xent(z1, z2, temperature, tau_plus, beta).item() == pytest.approx(expected, rel=1e-10)


def test_larger_beta_puts_more_weight_on_the_most_similar_negative():
    z1, z2 = random_pair(6, 4, seed=4)
    hardest = (torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)[0] @
               torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).T)
    hardest[[0, 6]] = -2.0  # not negatives of anchor 0
    k = int(hardest.argmax())
    top_weight = [hard_negative_weights(z1, z2, 0.5, beta)[0, k].item() for beta in (0.0, 1.0, 5.0)]
    assert top_weight[0] == pytest.approx(1.0) and top_weight[0] < top_weight[1] < top_weight[2]


# ---------------------------------------------------------------------------
# Methods: one training step, and the loss each one computes.
# ---------------------------------------------------------------------------


def tiny_batch(device: str, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)
    return Batch(images, torch.zeros(8, dtype=torch.long, device=device), torch.arange(8, device=device),
                 torch.Generator(device=device).manual_seed(seed))


def tiny_method(kind, **options):
    torch.manual_seed(0)
    return kind(SmallCNN(width=4, feature_dim=8), projection_dim=6, hidden_dim=16, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", [AlignUniform, DebiasedSimCLR, HardNegativeSimCLR])
def test_one_training_step_changes_the_encoder(kind, device):
    method = tiny_method(kind).to(device)
    before = [p.detach().clone() for p in method.encoder.parameters()]
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    output = method.training_loss(tiny_batch(device))
    loss = output["loss"] if isinstance(output, dict) else output
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in method.parameters())
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, method.encoder.parameters()))


def test_align_uniform_loss_matches_loop():
    method = tiny_method(AlignUniform, alpha=1.5, t=3.0, uniformity_weight=0.7)
    batch = tiny_batch("cpu", seed=5)
    output = method.training_loss(batch)
    first, second = make_views(batch.images, method.recipe, 2, torch.Generator().manual_seed(5))
    with torch.no_grad():
        z_i, z_j = method.project(torch.cat([first, second])).chunk(2)
    x, y = unit_rows(z_i, z_j)[:8], unit_rows(z_i, z_j)[8:]
    alignment = sum(math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v))) ** 1.5 for u, v in zip(x, y)) / 8

    def uniformity(points):
        kernels = [math.exp(-3.0 * sum((a - b) ** 2 for a, b in zip(points[i], points[j])))
                   for i in range(8) for j in range(i + 1, 8)]
        return math.log(sum(kernels) / len(kernels))

    expected = alignment + 0.7 * (uniformity(x) + uniformity(y)) / 2
    assert output["loss"].item() == pytest.approx(expected, rel=1e-4)
    assert output["align"] == pytest.approx(alignment, rel=1e-4)
    assert not hasattr(method, "temperature")


def test_debiased_without_prior_and_hard_negatives_without_beta_reduce_to_simpler_methods():
    torch.manual_seed(0)
    simclr = SimCLR(SmallCNN(width=4, feature_dim=8), projection_dim=6, hidden_dim=16, temperature=0.4,
                    recipe=simclr_cifar())
    debiased = tiny_method(DebiasedSimCLR, temperature=0.4, tau_plus=0.0)
    hard = tiny_method(HardNegativeSimCLR, temperature=0.4, tau_plus=0.2, beta=0.0)
    debiased_with_prior = tiny_method(DebiasedSimCLR, temperature=0.4, tau_plus=0.2)
    for method in (debiased, hard, debiased_with_prior):
        method.load_state_dict(simclr.state_dict())
    torch.testing.assert_close(debiased.training_loss(tiny_batch("cpu")), simclr.training_loss(tiny_batch("cpu")))
    torch.testing.assert_close(hard.training_loss(tiny_batch("cpu")),
                               debiased_with_prior.training_loss(tiny_batch("cpu")))
    assert abs(debiased_with_prior.training_loss(tiny_batch("cpu")).item()
               - simclr.training_loss(tiny_batch("cpu")).item()) > 1e-4


# ---------------------------------------------------------------------------
# Bad inputs.
# ---------------------------------------------------------------------------

encoder = SmallCNN(width=4, feature_dim=8)
z_pair = random_pair(4, 3)


@pytest.mark.parametrize("call, message", [
    (lambda: DebiasedSimCLR(encoder, temperature=0.0), "temperature must be > 0"),
    (lambda: DebiasedSimCLR(encoder, tau_plus=1.0), r"tau_plus .* must lie in \[0, 1\)"),
    (lambda: HardNegativeSimCLR(encoder, tau_plus=-0.1), r"tau_plus .* must lie in \[0, 1\)"),
    (lambda: HardNegativeSimCLR(encoder, beta=-1.0), "beta must be >= 0"),
    (lambda: AlignUniform(encoder, alpha=0.0), "alpha must be > 0"),
    (lambda: AlignUniform(encoder, t=-2.0), "t must be > 0"),
    (lambda: AlignUniform(encoder, uniformity_weight=-1.0), "uniformity_weight must be >= 0"),
    (lambda: false_negative_mask(torch.tensor([[0, 1]])), "labels must be a 1-D integer tensor"),
    (lambda: false_negative_mask(torch.tensor([0.0, 1.0])), "labels must be a 1-D integer tensor"),
    (lambda: oracle_nt_xent(*z_pair, torch.tensor([0, 1, 2])), "labels must hold one class per image"),
    (lambda: oracle_nt_xent(*z_pair, torch.tensor([1, 1, 1, 1])), "no negative of another class"),
    (lambda: oracle_nt_xent(*z_pair, torch.tensor([0, 1, 0, 1]), temperature=-1.0), "temperature must be > 0"),
    (lambda: oracle_nt_xent(z_pair[0], z_pair[1][:3], torch.arange(4)), "must have the same shape"),
    (lambda: oracle_nt_xent(z_pair[0][:1], z_pair[1][:1], torch.arange(1)), "N must be >= 2"),
    (lambda: hard_negative_weights(z_pair[0][0], z_pair[1][0]), "must be a 2-D tensor"),
    (lambda: hard_negative_weights(*z_pair, beta=-0.5), "beta must be >= 0"),
])
def test_bad_inputs_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
