import pytest
import torch

from sslbook.optimizers import LARS
from sslbook.train import TrainConfig, make_optimizer


def lars_by_hand(weight, grads, lr, momentum, weight_decay, eta, clip, adapted):
    """Two steps of LARS written out for one tensor: plain floats and a Python loop."""
    weight, velocity = weight.clone(), None
    for grad in grads:
        step = grad.clone()
        if adapted:
            w_norm = sum(float(v) ** 2 for v in weight.flatten()) ** 0.5
            g_norm = sum(float(v) ** 2 for v in grad.flatten()) ** 0.5
            ratio = eta * w_norm / (g_norm + weight_decay * w_norm) / lr
            ratio = min(ratio, 1.0) if clip else ratio
            step = (grad + weight_decay * weight) * ratio
        velocity = step if velocity is None else momentum * velocity + step
        weight = weight - lr * velocity
    return weight


@pytest.mark.parametrize("clip", [True, False])
def test_lars_steps_match_the_trust_ratio_written_out(clip):
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    grads = [(torch.randn(4, 3, generator=generator, dtype=torch.float64) * scale,
              torch.randn(4, generator=generator, dtype=torch.float64)) for scale in (10.0, 0.01)]
    weights = [torch.nn.Parameter(matrix.clone()), torch.nn.Parameter(bias.clone())]
    optimizer = LARS(weights, lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.02, clip=clip)
    for grad_matrix, grad_bias in grads:
        weights[0].grad, weights[1].grad = grad_matrix.clone(), grad_bias.clone()
        optimizer.step()
    expected_matrix = lars_by_hand(matrix, [g for g, _ in grads], 0.3, 0.9, 1e-4, 0.02, clip, adapted=True)
    expected_bias = lars_by_hand(bias, [g for _, g in grads], 0.3, 0.9, 1e-4, 0.02, clip, adapted=False)
    assert torch.allclose(weights[0].detach(), expected_matrix, atol=1e-12)
    assert torch.allclose(weights[1].detach(), expected_bias, atol=1e-12)  # 1-D: plain momentum SGD


def test_the_ratio_scales_a_layer_step_to_eta_of_its_norm():
    weight = torch.nn.Parameter(torch.full((10, 10), 0.1))
    weight.grad = torch.full((10, 10), 100.0)  # a huge gradient: the step is eta * ||w|| whatever its size
    LARS([weight], lr=1.0, momentum=0.0, eta=0.02).step()
    moved = (weight.detach() - 0.1).norm()
    assert moved == pytest.approx(0.02 * 1.0, rel=1e-5)  # ||w|| = 1


def test_the_training_loop_builds_lars_and_refuses_an_unknown_optimiser():
    parameters = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert isinstance(make_optimizer(parameters, TrainConfig(optimizer="lars", lr=0.3)), LARS)
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adamw', 'lars', got 'lamb'"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ValueError, match="eta"):
        LARS(parameters, lr=0.1, eta=0.0)
