"""Context Encoder (Pathak, Kraehenbuehl, Donahue, Darrell and Efros, 2016).

Drop a region M^ of each image x, fill it with the mean colour, and train an
encoder-decoder F to paint it back:

    L_rec = || M^ * (x - F((1 - M^) * x)) ||_2^2,
    L_adv = max_D  E[log D(M^ * x) + log(1 - D(M^ * F((1 - M^) * x)))],
    L     = lambda_rec * L_rec + lambda_adv * L_adv.

The adversarial term is optional (`adversarial=True`); without it the method is
pure inpainting by squared error. D judges the hidden region only, as in the authors' released
code, where it sees the predicted centre and never the context: shown the whole completed image, it
could tell real from fake by the seam alone. The encoder of F is kept for evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..autoencoder import AutoencoderFeatures, ConvAutoencoder
from ..checks import check_positive_int, unit_float
from ..losses import (adversarial_discriminator_loss, adversarial_generator_loss, context_encoder_joint_loss,
                      masked_reconstruction_loss)
from ..losses.generative import CONTEXT_ENCODER_ADVERSARIAL_WEIGHT, CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT
from ..masking import apply_mask, centre_mask, random_block_masks
from ..networks import ContextDiscriminator
from ..runs import MethodEntry, per_profile

MASK_KINDS = ("centre", "random_blocks")


def harmonic_fill(images: Tensor, mask: Tensor, iterations: int = 200) -> Tensor:
    """Classic inpainting baseline with no learning: a smooth interpolation of the hole's border.

    Starting from the mean-colour fill of `apply_mask`, every hidden pixel is
    replaced, `iterations` times, by the average of its four neighbours
    (Jacobi iterations of Laplace's equation; the image border is padded by
    replication). Visible pixels never change, so the fill converges to the
    harmonic interpolation of the values around the hole. It is the yardstick
    the Context Encoder (Pathak et al., 2016) should beat: any gain over it
    comes from knowing what images contain, not from smoothness.

    Args:
        images: x, float (N, C, H, W) in [0, 1].
        mask: M^, bool (H, W) or (N, H, W), True on the hidden region.
        iterations: number of averaging sweeps, >= 1; a hole of side s needs
            on the order of s**2 sweeps to converge (200 suit 16x16 holes).

    Returns:
        A new tensor like `images`, the hole filled.
    """
    filled = apply_mask(images, mask)  # also checks the images and the mask
    check_positive_int(iterations, "iterations", "200")
    hidden = mask.to(images.device).reshape(-1, 1, *images.shape[-2:])
    for _ in range(iterations):
        padded = F.pad(filled, (1, 1, 1, 1), mode="replicate")
        neighbours = 0.25 * (padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2]
                             + padded[..., 1:-1, 2:])  # above, below, left, right
        filled = torch.where(hidden, neighbours, images)
    return filled


class ContextEncoder(nn.Module):
    """Inpainting as a pretext task (Pathak et al., 2016).

    Args:
        autoencoder: F, the encoder-decoder; a fresh ConvAutoencoder(32) when None.
        mask_kind: "centre" (the central square covering `centre_fraction` of
            the area) or "random_blocks" (`n_blocks` squares of side
            `block_size` at random positions, drawn per image).
        centre_fraction: area share of the central hole, in (0, 1).
        block_size, n_blocks: the random-block variant's squares (the mask
            settings are checked on a 32x32 image when the method is built).
        overlap_weight: weight of the thin visible band around the hole in
            L_rec (the paper's 10), or None to score the hole only.
        adversarial: add the GAN term L_adv with a `ContextDiscriminator` D.
        reconstruction_weight, adversarial_weight: lambda_rec and lambda_adv
            (the paper's 0.999 and 0.001).

    With `adversarial=True` one backward pass trains both players: F gets
    lambda_rec * L_rec + lambda_adv * (-log D(F(.))) computed through a copy of
    D's parameters that carries no gradient, and D gets its own binary
    cross-entropy on real images and on detached completions. The two losses
    touch disjoint parameters, so summing them is the paper's alternating
    update done simultaneously. D judges whole completed images: the
    prediction inside M^, the original pixels outside.
    """

    def __init__(
        self,
        autoencoder: ConvAutoencoder | None = None,
        mask_kind: str = "centre",
        centre_fraction: float = 0.25,
        block_size: int = 8,
        n_blocks: int = 4,
        overlap_weight: float | None = 10.0,
        adversarial: bool = False,
        reconstruction_weight: float = CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT,
        adversarial_weight: float = CONTEXT_ENCODER_ADVERSARIAL_WEIGHT,
    ) -> None:
        super().__init__()
        if mask_kind not in MASK_KINDS:
            raise ValueError(f"unknown mask_kind {mask_kind!r}; use one of {', '.join(map(repr, MASK_KINDS))}")
        if overlap_weight is not None and not overlap_weight > 0:
            raise ValueError(f"overlap_weight must be > 0, got {overlap_weight}; pass 10.0 as in the paper or None")
        if reconstruction_weight < 0 or adversarial_weight < 0:
            raise ValueError(
                f"loss weights must be >= 0, got lambda_rec={reconstruction_weight}, "
                f"lambda_adv={adversarial_weight}; pass the paper's 0.999 and 0.001"
            )
        self.encoder = AutoencoderFeatures(autoencoder if autoencoder is not None else ConvAutoencoder())
        self.mask_kind = mask_kind
        self.centre_fraction = centre_fraction
        self.block_size = block_size
        self.n_blocks = n_blocks
        self.overlap_weight = overlap_weight
        self.reconstruction_weight = reconstruction_weight
        self.adversarial_weight = adversarial_weight
        self.discriminator = ContextDiscriminator() if adversarial else None
        # Build one mask now so that bad sizes fail here rather than in training.
        self.masks(1, 32, 32, torch.Generator().manual_seed(0), torch.device("cpu"))

    @property
    def autoencoder(self) -> ConvAutoencoder:
        return self.encoder.autoencoder

    def masks(self, n: int, height: int, width: int, generator: torch.Generator | None,
              device: torch.device | str) -> Tensor:
        """M^ for a batch: bool (N, H, W), True on the hidden region."""
        if self.mask_kind == "centre":
            return centre_mask(height, width, self.centre_fraction, device=device).expand(n, height, width)
        return random_block_masks(n, height, width, self.block_size, self.n_blocks, generator, device)

    def inpaint(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The context (1 - M^) * x + M^ * mean colour, and F's prediction of the whole image."""
        context = apply_mask(images, mask)
        return context, self.autoencoder(context)

    def training_loss(self, batch) -> dict[str, Tensor | float]:
        images = unit_float(batch.images)
        n, _, height, width = images.shape
        mask = self.masks(n, height, width, batch.generator, images.device)
        _, prediction = self.inpaint(images, mask)
        reconstruction = masked_reconstruction_loss(prediction, images, mask, self.overlap_weight)
        if self.discriminator is None:
            return {"loss": reconstruction}
        hidden = mask[:, None].to(images.dtype)  # M^: D sees the region that was filled, zero elsewhere
        real, filled = hidden * images, hidden * prediction
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        generator_term = adversarial_generator_loss(functional_call(self.discriminator, frozen, (filled,)))
        inpainting_loss = context_encoder_joint_loss(
            reconstruction, generator_term, self.reconstruction_weight, self.adversarial_weight
        )
        discriminator_loss = adversarial_discriminator_loss(self.discriminator(real),
                                                            self.discriminator(filled.detach()))
        return {
            "loss": inpainting_loss + discriminator_loss,
            "reconstruction": reconstruction.item(),
            "adversarial": generator_term.item(),
            "discriminator": discriminator_loss.item(),
        }


def build(profile, train_data, *, base_channels: int, mask_kind: str, centre_fraction: float, block_size: int,
          n_blocks: int, overlap_weight: float | None, adversarial: bool) -> ContextEncoder:
    return ContextEncoder(ConvAutoencoder(base_channels=base_channels), mask_kind=mask_kind,
                          centre_fraction=centre_fraction, block_size=block_size, n_blocks=n_blocks,
                          overlap_weight=overlap_weight, adversarial=adversarial)


ENTRY = MethodEntry(
    name="context_encoder", title="Context Encoder", chapter="book/generative/context_encoder.ipynb", order=19,
    build=build, summary="Context Encoder: inpainting the central region (Pathak et al. 2016)",
    training=per_profile(quick=dict(epochs=12),
                         full=dict(epochs=100, optimizer="adamw", lr=1e-3, weight_decay=1e-4, warmup_epochs=5)),
    settings=per_profile(dict(mask_kind="centre", centre_fraction=0.25, block_size=8, n_blocks=4,
                              overlap_weight=10.0, adversarial=False),
                         quick=dict(base_channels=32), full=dict(base_channels=64)))
