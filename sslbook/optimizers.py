"""LARS, the layer-wise adaptive optimiser of large-batch self-supervised recipes (You et al. 2017).

SGD with momentum, where the step of each weight tensor w is rescaled by its trust ratio

    local_lr = eta * ||w|| / (||g|| + weight_decay * ||w||),

so that every layer moves by about the same fraction of its norm. With ``clip`` (the LARC variant of
NVIDIA's apex, which solo-learn's CIFAR Barlow Twins recipe runs), the step of w is
min(local_lr, lr) * (g + weight_decay * w): the trust ratio only ever slows a layer down. Biases and
normalisation weights (1-D tensors) get neither weight decay nor the ratio, as in that recipe.
"""
from __future__ import annotations

import torch

from .checks import check_positive


class LARS(torch.optim.Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02,
                 clip: bool = True):
        check_positive(lr, "lr", "0.3")
        check_positive(eta, "eta (the trust coefficient)", "0.02 (solo-learn's)")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, clip=clip))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, weight_decay = group["lr"], group["weight_decay"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                step = weight.grad
                if weight.ndim > 1:  # biases and normalisation weights keep the plain gradient
                    weight_norm, grad_norm = weight.norm(), step.norm()
                    local_lr = group["eta"] * weight_norm / (grad_norm + weight_decay * weight_norm)
                    # A zero weight or gradient (a fresh layer, a frozen path): the plain step.
                    ratio = torch.where((weight_norm > 0) & (grad_norm > 0), local_lr / lr, torch.ones_like(local_lr))
                    if group["clip"]:
                        ratio = ratio.clamp(max=1.0)
                    step = (step + weight_decay * weight) * ratio
                state = self.state[weight]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = step.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(step)
                weight.add_(state["momentum_buffer"], alpha=-lr)
        return loss
