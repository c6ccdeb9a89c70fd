"""BYOL (Grill et al. 2020): an online network predicts a slowly moving target network; no negatives.

Online network (parameters theta): encoder f_theta, projector g_theta, predictor q_theta.
Target network (parameters xi): encoder f_xi, projector g_xi, an exponential moving
average of the online one, xi <- tau xi + (1 - tau) theta, with the decay tau rising
from tau_base to 1 on a cosine schedule over the K training steps:
    tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, byol_cifar, make_views
from ..checks import check_unit_interval as _check_unit_interval
from ..losses import byol_loss
from ..networks import projection_mlp
from ..runs import MethodEntry, per_profile


def cosine_decay_rate(progress: float, tau_base: float) -> float:
    """BYOL's decay rate tau at a point of training (Grill et al., 2020, section 3.2).

    progress: k / K, the fraction of the K training steps done, in [0, 1];
    tau_base: the starting decay rate tau_base, in [0, 1].
    Returns tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, which is tau_base
    at k = 0 and 1 at k = K.
    """
    _check_unit_interval(progress, "progress (k/K)", "0.5")
    _check_unit_interval(tau_base, "tau_base", "0.99")
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """One exponential-moving-average step of BYOL, in place: xi <- tau xi + (1 - tau) theta.

    target: the module holding xi; online: the module holding theta, with
    parameters of the same names and shapes; tau: the decay rate in [0, 1]
    (tau = 1 leaves the target unchanged, tau = 0 copies the online weights).
    Only parameters move; buffers (batch-norm statistics) are left to the
    target's own forward passes. All parameters move in two foreach ops (on a
    GPU a few fused kernels, not two per parameter), with the arithmetic of
    ``xi.mul_(tau).add_(theta, alpha=1 - tau)`` on each.
    """
    _check_unit_interval(tau, "tau (the EMA decay rate)", "0.99")
    target_parameters = dict(target.named_parameters())
    online_parameters = dict(online.named_parameters())
    if target_parameters.keys() != online_parameters.keys():
        raise ValueError("target and online modules have different parameters; "
                         "build the target as copy.deepcopy(online)")
    for name, xi in target_parameters.items():
        theta = online_parameters[name]
        if xi.shape != theta.shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(xi.shape)} in the target but "
                             f"{tuple(theta.shape)} online; build the target as copy.deepcopy(online)")
    xi_parameters = list(target_parameters.values())
    torch._foreach_mul_(xi_parameters, tau)
    torch._foreach_add_(xi_parameters, [online_parameters[name].detach() for name in target_parameters],
                        alpha=1.0 - tau)


def normalised_std(z: torch.Tensor) -> torch.Tensor:
    """Collapse measure: the standard deviation over the batch of the L2-normalised outputs,
    averaged over the d dimensions (as used to diagnose collapse by Chen & He, 2021).

    z: (N, d) outputs. About 1/sqrt(d) when the outputs spread over the sphere,
    0 when every input gives the same direction (collapse). Population std.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must have shape (N, d) with N >= 2, got {tuple(z.shape)}; pass a batch of outputs")
    return F.normalize(z.float(), dim=1).std(dim=0, correction=0).mean()


class BYOL(nn.Module):
    """Bootstrap your own latent (Grill et al., 2020).

    encoder: f_theta (its copy becomes f_xi); projection_dim, hidden_dim: sizes of
    the projector g and predictor q (both Linear-BN-ReLU-Linear MLPs); tau_base:
    the starting EMA decay rate; cosine_schedule: raise tau to 1 with the cosine
    schedule (False keeps tau = tau_base throughout); use_predictor: False drops
    q_theta (the ablation that collapses); recipes: the two view recipes t, t'.
    """

    def __init__(self, encoder: nn.Module, projection_dim: int = 256, hidden_dim: int = 4096,
                 tau_base: float = 0.99, cosine_schedule: bool = True, use_predictor: bool = True,
                 recipes: tuple[ViewRecipe, ViewRecipe] | None = None):
        super().__init__()
        _check_unit_interval(tau_base, "tau_base", "0.99 (or 0.996 for long runs)")
        self.encoder = encoder  # f_theta
        self.projector = projection_mlp(encoder.feature_dim, hidden_dim, projection_dim)  # g_theta
        self.predictor = (projection_mlp(projection_dim, hidden_dim, projection_dim)  # q_theta
                          if use_predictor else nn.Identity())
        self.target_encoder = copy.deepcopy(self.encoder)  # f_xi
        self.target_projector = copy.deepcopy(self.projector)  # g_xi
        for parameter in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            parameter.requires_grad_(False)
        self.tau_base = tau_base
        self.cosine_schedule = cosine_schedule
        self.tau = tau_base
        self.recipes = recipes or byol_cifar()

    def training_loss(self, batch) -> dict:
        views = torch.cat(make_views(batch.images, self.recipes, n_views=2, generator=batch.generator))  # v, v'
        z_online = self.projector(self.encoder(views))  # z_theta, z'_theta
        p_first, p_second = self.predictor(z_online).chunk(2)  # q_theta(z_theta), q_theta(z'_theta)
        with torch.no_grad():
            z_target_first, z_target_second = self.target_projector(self.target_encoder(views)).chunk(2)
        loss = byol_loss(p_first, z_target_second) + byol_loss(p_second, z_target_first)
        # Logged values stay tensors: turning them into numbers here would make the host wait for the device.
        return {"loss": loss, "std": normalised_std(z_online.detach()), "tau": self.tau}

    def after_step(self, progress: float) -> None:
        """Move the target towards the online network after each optimiser step."""
        self.tau = cosine_decay_rate(progress, self.tau_base) if self.cosine_schedule else self.tau_base
        ema_update(self.target_encoder, self.encoder, self.tau)
        ema_update(self.target_projector, self.projector, self.tau)


def build(profile, train_data, *, projection_dim: int, hidden_dim: int, tau_base: float, cosine_schedule: bool,
          use_predictor: bool) -> BYOL:
    return BYOL(profile.encoder(), projection_dim=projection_dim, hidden_dim=hidden_dim, tau_base=tau_base,
                cosine_schedule=cosine_schedule, use_predictor=use_predictor, recipes=byol_cifar())


ENTRY = MethodEntry(
    name="byol", title="BYOL", chapter="book/contrastive/byol.ipynb", order=14, build=build,
    summary="BYOL: online predictor against an EMA target, no negatives (Grill et al. 2020)",
    training=per_profile(quick=dict(epochs=6)),
    settings=per_profile(dict(tau_base=0.99, cosine_schedule=True, use_predictor=True),
                         quick=dict(projection_dim=128, hidden_dim=256), full=dict(projection_dim=256, hidden_dim=4096)))
