"""Tests of sslbook.methods.simclr_v2: the deeper head, fine-tuning from its middle layer,
the distillation loss and step, the labelled subsets, and one-step smoke trainings."""
import math

import pytest
import torch
from torch import nn

from sslbook.augment import augment, make_views
from sslbook.data import ImageData
from sslbook.losses import distillation_loss, nt_xent
from sslbook.methods.simclr_v2 import (Distillation, HeadLayerEncoder, SimCLRv2, classification_accuracy,
                                       classifier, fine_tuning_cifar, labelled_fraction)
from sslbook.methods.supervised import Supervised
from sslbook.networks import SmallCNN
from sslbook.train import Batch, TrainConfig, train


def tiny_simclr_v2() -> SimCLRv2:
    torch.manual_seed(0)
    return SimCLRv2(SmallCNN(width=4, feature_dim=8), projection_dim=5, hidden_dim=12)


def random_images(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def tiny_data(n: int = 8, n_classes: int = 2) -> ImageData:
    return ImageData(random_images(n), torch.arange(n) % n_classes, [f"class {c}" for c in range(n_classes)])


QUICK = dict(epochs=1, batch_size=4, optimizer="adamw", lr=1e-3, max_steps=1)


# ------------------------------------------------------------------ the head


def test_the_projection_head_has_three_layers():
    model = tiny_simclr_v2()
    linears = [m for m in model.projector if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 12), (12, 12), (12, 5)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.projector) == 2


def test_training_loss_is_nt_xent_of_the_two_projected_views():
    model = tiny_simclr_v2()
    images = random_images(6)
    loss = model.training_loss(Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6),
                                     torch.Generator().manual_seed(2)))
    first, second = make_views(images, model.recipe, n_views=2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z1, z2 = model.projector(model.encoder(torch.cat([first, second]))).chunk(2)
    assert loss.item() == pytest.approx(nt_xent(z1, z2, 0.5).item(), rel=1e-5)


def test_fine_tuning_network_is_the_encoder_and_the_first_head_layer():
    model = tiny_simclr_v2().eval()
    network = model.fine_tuning_network().eval()
    assert isinstance(network, HeadLayerEncoder) and network.feature_dim == 12
    images = random_images(4).float() / 255
    with torch.no_grad():
        h = model.encoder(images)
        linear, norm = model.projector[0], model.projector[1]
        by_hand = (h @ linear.weight.T - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
        by_hand = torch.relu(by_hand * norm.weight + norm.bias)  # Linear (no bias), BN (eval), ReLU
        torch.testing.assert_close(network(images), by_hand)


def test_fine_tuning_network_is_a_copy():
    model = tiny_simclr_v2()
    network = model.fine_tuning_network()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)
    assert not torch.equal(network.head_layer[0].weight, model.projector[0].weight)
    assert not torch.equal(next(network.encoder.parameters()), next(model.encoder.parameters()))


# ------------------------------------------------------------------ distillation loss


def distillation_by_loops(student: list[list[float]], teacher: list[list[float]], tau: float) -> float:
    total = 0.0
    for s_row, t_row in zip(student, teacher):
        t_norm = sum(math.exp(t / tau) for t in t_row)
        s_norm = sum(math.exp(s / tau) for s in s_row)
        total -= sum(math.exp(t / tau) / t_norm * math.log(math.exp(s / tau) / s_norm) for s, t in zip(s_row, t_row))
    return total / len(student)


@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0])
def test_distillation_loss_matches_a_loop(tau):
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    expected = distillation_by_loops(student.tolist(), teacher.tolist(), tau)
    assert distillation_loss(student, teacher, tau).item() == pytest.approx(expected, rel=1e-10)


def test_distillation_loss_with_equal_logits_is_the_teachers_entropy_and_its_minimum():
    teacher = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    p = torch.softmax(teacher / 2.0, dim=1)
    entropy = -(p * p.log()).sum().item()
    assert distillation_loss(teacher, teacher, 2.0).item() == pytest.approx(entropy, rel=1e-12)
    assert distillation_loss(teacher + torch.tensor([[0.0, 1.0, 0.0]]), teacher, 2.0).item() > entropy


def test_distillation_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"student_logits must have shape \(N, C\)"):
        distillation_loss(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="must have the same shape"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        distillation_loss(torch.randn(4, 3), torch.randn(4, 3), 0)


# ------------------------------------------------------------------ distillation step


def test_distillation_keeps_the_teacher_frozen_and_in_eval_mode():
    torch.manual_seed(0)
    teacher = classifier(tiny_simclr_v2().fine_tuning_network(), 2)
    student = classifier(tiny_simclr_v2().fine_tuning_network(), 2)
    method = Distillation(teacher, student, temperature=2.0).train()
    assert method.student.training and not method.teacher.training
    assert all(not p.requires_grad for p in method.teacher.parameters())

    images = random_images(6)
    loss = method.training_loss(Batch(images, torch.zeros(6, dtype=torch.long), torch.arange(6),
                                      torch.Generator().manual_seed(4)))
    views = augment(images, method.recipe, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = distillation_by_loops(student(views).double().tolist(), teacher(views).double().tolist(), 2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    loss.backward()
    assert all(p.grad is None for p in method.teacher.parameters())


def test_distillation_rejects_a_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Distillation(nn.Linear(2, 2), nn.Linear(2, 2), temperature=-1.0)


def test_the_fine_tuning_recipe_has_no_colour_changes():
    recipe = fine_tuning_cifar()
    assert recipe.jitter_p == 0.0 and recipe.grayscale_p == 0.0 and recipe.flip_p == 0.5


# ------------------------------------------------------------------ labelled subsets and accuracy


def test_labelled_fraction_is_class_balanced():
    data = ImageData(torch.zeros(200, 3, 4, 4, dtype=torch.uint8), torch.arange(200) % 10, [str(c) for c in range(10)])
    subset = labelled_fraction(data, 0.1)
    assert len(subset) == 20
    assert torch.bincount(subset.labels, minlength=10).tolist() == [2] * 10


@pytest.mark.parametrize("fraction, match", [(0.0, r"fraction must lie in \(0, 1\]"), (1.5, r"fraction must lie"),
                                             (0.01, "leaves no image per class")])
def test_labelled_fraction_rejects_bad_fractions(fraction, match):
    data = ImageData(torch.zeros(40, 3, 4, 4, dtype=torch.uint8), torch.arange(40) % 4, list("abcd"))
    with pytest.raises(ValueError, match=match):
        labelled_fraction(data, fraction)


def test_classification_accuracy_counts_correct_argmaxes():
    class FirstPixel(nn.Module):  # logits (pixel, 0.5): predicts class 0 where the first pixel is above 0.5
        def forward(self, images):
            value = images[:, 0, 0, 0]
            return torch.stack([value, torch.full_like(value, 0.5)], dim=1)

    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    images[:2, 0, 0, 0] = 255
    data = ImageData(images, torch.tensor([0, 1, 1, 1]), ["bright", "dark"])  # right on images 0, 2 and 3
    assert classification_accuracy(FirstPixel(), data) == pytest.approx(75.0)


# ------------------------------------------------------------------ smoke trainings


def test_one_step_smoke_training_of_pre_training_fine_tuning_and_distillation():
    data = tiny_data()
    model = tiny_simclr_v2()
    history = train(model, data, TrainConfig(**QUICK), device="cpu", progress=False)
    assert math.isfinite(history.losses()[0])

    fine_tuned = Supervised(model.fine_tuning_network(), n_classes=2, recipe=fine_tuning_cifar())
    history = train(fine_tuned, data, TrainConfig(**QUICK), device="cpu", progress=False)
    assert math.isfinite(history.losses()[0])

    teacher = nn.Sequential(fine_tuned.encoder, fine_tuned.classifier)
    student = classifier(tiny_simclr_v2().fine_tuning_network(), 2)
    before = [p.detach().clone() for p in student.parameters()]
    teacher_before = [t.detach().clone() for t in teacher.state_dict().values()]
    distillation = Distillation(teacher, student, temperature=1.0)
    history = train(distillation, data, TrainConfig(**QUICK), device="cpu", progress=False)
    assert math.isfinite(history.losses()[0])
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    # neither the weights nor the batch-norm statistics of the teacher moved
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, teacher.state_dict().values()))
    assert 0.0 <= classification_accuracy(student, data) <= 100.0
