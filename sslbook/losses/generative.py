"""Losses of the generative methods (Part III): reconstructing what was corrupted or hidden.

The survey leaves its generative section empty, so the symbols follow the papers: x is the image,
x~ its corrupted version, M^ the Context Encoder's binary region mask and F its encoder-decoder,
D a discriminator, p the patch size, L the number of patches and M the set of hidden patches of MAE.
"""
import torch
import torch.nn.functional as F

from ..checks import check_float_images
from ..masking import check_patch_mask, check_pixel_mask
from ..patches import standardise_patches

__all__ = ['denoising_loss', 'masked_reconstruction_loss', 'adversarial_generator_loss',
           'adversarial_discriminator_loss', 'context_encoder_joint_loss', 'mae_loss']

# The Context Encoder's weights lambda_rec and lambda_adv (Pathak et al. 2016).
CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT = 0.999
CONTEXT_ENCODER_ADVERSARIAL_WEIGHT = 0.001


# Denoising autoencoder (Vincent et al. 2008):
#   L(x, z) = || x - z ||^2,  z = g_theta'(f_theta(x~)),  x~ ~ q_D(x~ | x);  mean over pixels, channels, images.
def denoising_loss(reconstruction: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Squared reconstruction error L(x, z) = ||x - z||^2 of the denoising autoencoder (Vincent et al., 2008).

    Averaged over every pixel, channel and image, so the scale does not depend
    on the image size. The target is the clean x, never the corrupted input x~.

    Args:
        reconstruction: z = g_theta'(f_theta(x~)), float (N, C, H, W).
        clean: x, float (N, C, H, W) in [0, 1].

    Returns:
        Scalar loss.
    """
    if reconstruction.shape != clean.shape:
        raise ValueError(
            f"reconstruction and clean images must have the same shape, got {tuple(reconstruction.shape)} "
            f"and {tuple(clean.shape)}; decode back to the input size"
        )
    return F.mse_loss(reconstruction, clean)


# Context Encoder, reconstruction (Pathak et al. 2016):
#   L_rec = || M^ * (x - F((1 - M^) * x)) ||_2^2;  here the mean over the hidden elements, or the
#   weighted mean sum(w * e^2) / sum(w) with weight overlap_weight on a band around the hole.
def masked_reconstruction_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    overlap_weight: float | None = None,
    overlap_width: int = 1,
) -> torch.Tensor:
    """Masked L2 reconstruction loss L_rec of the Context Encoder (Pathak et al., 2016).

        L_rec = || M^ * (x - F((1 - M^) * x)) ||_2^2,

    normalised here to a mean: the squared error averaged over every masked
    element (pixels times channels) of the batch, so its scale does not depend
    on the size of the hole. Pixels outside M^ do not count.

    The paper also predicts a thin band of visible context around the hole and
    weights its error 10 times higher, which makes the inpainting blend with its
    border. With `overlap_weight` set, pixels within `overlap_width` pixels
    (Chebyshev distance) of the hole but outside it get that weight, the hole
    weight 1, and the loss is the weighted mean sum(w * e^2) / sum(w).

    Args:
        prediction: F((1 - M^) * x), float (N, C, H, W), the full predicted image.
        target: x, float (N, C, H, W).
        mask: M^, bool (H, W) or (N, H, W), True on the hidden region.
        overlap_weight: weight of the border band (the paper uses 10), or None
            to score the hole only.
        overlap_width: width of the band in pixels. The paper's band is 7
            pixels wide on 128x128 images (4 in its released code), i.e. 1 to 2
            pixels at CIFAR's 32x32.

    Returns:
        Scalar loss.
    """
    check_float_images(prediction, "prediction")
    check_float_images(target, "target")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}; decode back to the full image size"
        )
    hole = check_pixel_mask(mask, prediction).to(prediction.dtype)
    if not bool(hole.any()):
        raise ValueError(
            "mask selects no pixel, so there is nothing to reconstruct; pass a mask with True on the hidden region"
        )
    weights = hole
    if overlap_weight is not None:
        if not overlap_weight > 0:
            raise ValueError(f"overlap_weight must be > 0, got {overlap_weight}; pass 10.0 as in the paper or None")
        if overlap_width < 1:
            raise ValueError(f"overlap_width must be >= 1 pixel, got {overlap_width}; pass 1 for 32x32 images")
        grown = F.max_pool2d(hole, kernel_size=2 * overlap_width + 1, stride=1, padding=overlap_width)
        weights = hole + overlap_weight * (grown - hole)
    weights = weights.expand_as(prediction)
    return (weights * (prediction - target) ** 2).sum() / weights.sum()


# Context Encoder, adversarial term for F (Goodfellow et al. 2014; Pathak et al. 2016):
#   L_adv^F = -log D(F((1 - M^) * x))  (the non-saturating form), mean over the batch.
def adversarial_generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator term of L_adv (Goodfellow et al., 2014; Pathak et al., 2016).

    The inpainting network F minimises -log D(F((1 - M^) * x)), i.e. binary
    cross-entropy with target "real" on the discriminator's logits, averaged
    over the batch.

    Args:
        logits_fake: D's logits on predicted regions, any shape.
    """
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


# Context Encoder, adversarial term for D (Pathak et al. 2016):
#   L_adv = max_D  E[log D(x) + log(1 - D(F((1 - M^) * x)))];  D minimises the negative, two BCEs.
def adversarial_discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator term of L_adv (Pathak et al., 2016).

    D maximises log D(x) + log(1 - D(F((1 - M^) * x))); as a loss this is the
    batch-mean binary cross-entropy on real regions (target 1) plus the one on
    predicted regions (target 0). Pass predictions detached from F.

    Args:
        logits_real: D's logits on real regions, any shape.
        logits_fake: D's logits on predicted regions, any shape.
    """
    real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    return real + fake


# Context Encoder, joint objective (Pathak et al. 2016):
#   L = lambda_rec * L_rec + lambda_adv * L_adv
def context_encoder_joint_loss(
    reconstruction_loss: torch.Tensor,
    adversarial_loss: torch.Tensor,
    reconstruction_weight: float = CONTEXT_ENCODER_RECONSTRUCTION_WEIGHT,
    adversarial_weight: float = CONTEXT_ENCODER_ADVERSARIAL_WEIGHT,
) -> torch.Tensor:
    """Joint objective L = lambda_rec * L_rec + lambda_adv * L_adv (Pathak et al., 2016).

    The paper uses lambda_rec = 0.999 and lambda_adv = 0.001: the adversarial
    term only sharpens what the reconstruction term already gets right.

    Args:
        reconstruction_loss: L_rec, e.g. from `masked_reconstruction_loss`.
        adversarial_loss: L_adv for the generator, from `adversarial_generator_loss`.
        reconstruction_weight: lambda_rec >= 0.
        adversarial_weight: lambda_adv >= 0.
    """
    if reconstruction_weight < 0 or adversarial_weight < 0:
        raise ValueError(
            f"loss weights must be >= 0, got lambda_rec={reconstruction_weight}, lambda_adv={adversarial_weight}; "
            "pass the paper's 0.999 and 0.001"
        )
    return reconstruction_weight * reconstruction_loss + adversarial_weight * adversarial_loss


# MAE (He et al. 2022):
#   L = (1 / |M|) * sum_{i in M} (1 / (p*p*C)) * || x^_i - x_i ||_2^2,  each x_i standardised first
#   (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6) when normalize_target is set.
def mae_loss(
    predicted_patches: torch.Tensor,
    target_patches: torch.Tensor,
    mask: torch.Tensor,
    normalize_target: bool = True,
) -> torch.Tensor:
    """MAE reconstruction loss on masked patches only (He et al., 2022).

        L = (1 / |M|) * sum_{i in M} (1 / (p*p*C)) * || x^_i - x_i ||_2^2,

    where |M| counts the masked patches of the whole batch; visible patches do
    not contribute. With `normalize_target` (MAE's norm_pix_loss, its default)
    each target patch is first standardised by its own pixels,
    x_i <- (x_i - mean(x_i)) / sqrt(var(x_i) + 1e-6), with the unbiased
    variance as in the MAE code; this sharpens the learned features.

    Args:
        predicted_patches: x^, float (N, L, p*p*C) from `MAEDecoder`.
        target_patches: x, float (N, L, p*p*C) from `patchify(images, p)`.
        mask: bool (N, L), True = masked, from `random_masking`.
        normalize_target: standardise each target patch first.

    Returns:
        Scalar loss.
    """
    if predicted_patches.shape != target_patches.shape or predicted_patches.ndim != 3:
        raise ValueError(
            f"predicted_patches and target_patches must both be (N, L, D), got {tuple(predicted_patches.shape)} "
            f"and {tuple(target_patches.shape)}; compare the decoder output with patchify(images, patch_size)"
        )
    mask = check_patch_mask(mask, predicted_patches)
    if not bool(mask.any()):
        raise ValueError("mask hides no patch, so the loss is undefined; pass a mask from random_masking")
    target = standardise_patches(target_patches) if normalize_target else target_patches
    per_patch = ((predicted_patches - target) ** 2).mean(dim=-1)
    weights = mask.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum()
