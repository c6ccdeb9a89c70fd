"""Masked Autoencoder, MAE (He, Chen, Xie, Li, Dollar and Girshick, 2022).

Cut each image x into L patches of p x p pixels, hide a random set M of them
(|M| = mask_ratio * L), encode only the visible patches with a Vision
Transformer, let a light decoder predict every patch from the encoded tokens
plus one shared mask token per hidden patch, and score the prediction on the
hidden patches only:

    L = (1 / |M|) * sum_{i in M} (1 / (p*p*C)) * || x^_i - x_i ||_2^2,

with each target patch x_i standardised by its own mean and variance when
`normalize_target` is set (the variant He et al. found better; their code defaults to raw pixels).
The encoder is kept for evaluation; the decoder is thrown away.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import unit_float
from ..losses import mae_loss
from ..masking import check_patch_mask, masked_patch_count, random_masking
from ..patches import patch_mean_and_std, patchify, unpatchify
from ..runs import MethodEntry, per_profile
from ..vit import MAEDecoder, TinyViT


def nearest_visible_prediction(patches: Tensor, mask: Tensor, grid_size: int) -> Tensor:
    """Baseline that fills each hidden patch with a copy of the nearest visible one.

    It needs no learning and shows what local copying achieves: a hidden patch
    i in M is predicted by the visible patch closest to it on the
    grid_size x grid_size patch grid (Euclidean distance between grid
    positions; ties go to the lower patch index). Visible patches are returned
    unchanged.

    Args:
        patches: x, float (N, L, D) from `patchify`, L = grid_size**2.
        mask: bool (N, L), True on the hidden set M; each row must keep at
            least one patch visible.
        grid_size: patches per side of the image.

    Returns:
        (N, L, D) predictions, comparable with `patches`.
    """
    if patches.ndim != 3 or patches.shape[1] != grid_size**2:
        raise ValueError(
            f"patches must have shape (N, {grid_size**2}, D) for a {grid_size}x{grid_size} grid, got "
            f"{tuple(patches.shape)}; pass patchify(images, patch_size) and grid_size = image_size // patch_size"
        )
    mask = check_patch_mask(mask, patches)
    if bool(mask.all(dim=1).any()):
        raise ValueError("a mask hides every patch of an image, so there is nothing to copy; keep some visible")
    rows = torch.arange(grid_size, device=patches.device).repeat_interleave(grid_size)
    cols = torch.arange(grid_size, device=patches.device).repeat(grid_size)
    squared_distance = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2  # (L, L)
    distance = squared_distance[None].float().masked_fill(mask[:, None, :], float("inf"))  # hidden sources excluded
    source = distance.argmin(dim=2)  # (N, L): nearest visible patch; a visible patch is its own nearest
    return patches.gather(1, source[..., None].expand_as(patches))


class MaskedAutoencoder(nn.Module):
    """MAE pre-training of a `TinyViT` (He et al., 2022).

    Args:
        encoder: the ViT encoder; a fresh TinyViT() (32x32 images, p = 4, L = 64) when None.
        decoder: the light decoder; by default an MAEDecoder matching the
            encoder's width, image size and patch size, `decoder_dim` wide and
            `decoder_depth` blocks deep.
        mask_ratio: |M| / L, the fraction of patches hidden, in (0, 1); MAE uses 0.75.
        normalize_target: standardise each target patch (MAE's norm_pix_loss).
    """

    def __init__(self, encoder: TinyViT | None = None, decoder: MAEDecoder | None = None, mask_ratio: float = 0.75,
                 normalize_target: bool = True, decoder_dim: int = 64, decoder_depth: int = 2) -> None:
        super().__init__()
        encoder = encoder if encoder is not None else TinyViT()
        if not isinstance(encoder, TinyViT):
            raise ValueError(
                f"encoder must be a sslbook.vit.TinyViT (MAE encodes visible patches only), got "
                f"{type(encoder).__name__}; pass TinyViT(patch_size=4)"
            )
        if decoder is None:
            decoder = MAEDecoder(encoder_dim=encoder.feature_dim, image_size=encoder.image_size,
                                 patch_size=encoder.patch_size, decoder_dim=decoder_dim, depth=decoder_depth)
        if decoder.n_patches != encoder.n_patches or decoder.head.out_features != encoder.patch_size**2 * 3:
            raise ValueError(
                f"the decoder predicts {decoder.n_patches} patches of {decoder.head.out_features} values but the "
                f"encoder cuts {encoder.n_patches} patches of {encoder.patch_size}x{encoder.patch_size}x3; build "
                f"both with the same image_size and patch_size={encoder.patch_size}"
            )
        if decoder.embed.in_features != encoder.feature_dim:
            raise ValueError(
                f"the decoder expects {decoder.embed.in_features}-dim tokens but the encoder gives "
                f"{encoder.feature_dim}; build MAEDecoder(encoder_dim={encoder.feature_dim})"
            )
        masked_patch_count(encoder.n_patches, mask_ratio)  # raises for a ratio outside (0, 1)
        self.encoder = encoder
        self.decoder = decoder
        self.mask_ratio = float(mask_ratio)
        self.normalize_target = normalize_target

    def predict(self, images: Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Mask, encode, decode.

        Args:
            images: x, float (N, 3, H, W) in [0, 1].
            mask_ratio: fraction to hide; the method's own ratio when None.
            generator: draws the masks (one random set M per image).

        Returns:
            predicted patches x^ (N, L, p*p*3), target patches x (N, L, p*p*3)
            in pixel units, and the mask (N, L), True on M.
        """
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        keep_indices, mask, restore_indices = random_masking(
            images.shape[0], self.encoder.n_patches, ratio, generator, images.device
        )
        tokens = self.encoder.forward_tokens(images, keep_indices)
        return self.decoder(tokens, restore_indices), patchify(images, self.encoder.patch_size), mask

    def training_loss(self, batch) -> Tensor:
        images = unit_float(batch.images)
        predicted, target, mask = self.predict(images, generator=batch.generator)
        return mae_loss(predicted, target, mask, self.normalize_target)

    @torch.no_grad()
    def reconstruct(self, images: Tensor, mask_ratio: float | None = None,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Images for display: the masked input, the reconstruction and the mask.

        With normalised targets the decoder predicts standardised patches, which
        carry no mean colour or contrast; they are mapped back to pixels with
        each *true* patch's own mean and standard deviation, so in that case
        the colours of hidden patches come from the original and only the
        pattern inside each patch is predicted. Visible patches are pasted in
        from the input, so only the hidden ones are predictions.

        Returns:
            masked input (hidden patches grey), reconstruction (clipped to
            [0, 1] for display), both float (N, 3, H, W), and the patch mask
            bool (N, L).
        """
        predicted, target, mask = self.predict(images, mask_ratio, generator)
        if self.normalize_target:
            mean, std = patch_mean_and_std(target)
            predicted = predicted * std + mean
        hidden = mask[..., None]
        height, width = images.shape[-2:]
        p = self.encoder.patch_size
        masked_input = unpatchify(torch.where(hidden, torch.full_like(target, 0.5), target), p, height, width)
        reconstruction = unpatchify(torch.where(hidden, predicted, target), p, height, width)
        return masked_input, reconstruction.clamp(0.0, 1.0), mask


def build(profile, train_data, *, image_size: int, patch_size: int, embed_dim: int, depth: int, num_heads: int,
          decoder_dim: int, decoder_depth: int, mask_ratio: float, normalize_target: bool) -> MaskedAutoencoder:
    encoder = TinyViT(image_size=image_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                      num_heads=num_heads)
    return MaskedAutoencoder(encoder, mask_ratio=mask_ratio, normalize_target=normalize_target,
                             decoder_dim=decoder_dim, decoder_depth=decoder_depth)


ENTRY = MethodEntry(
    name="mae", title="MAE", chapter="book/generative/mae.ipynb", order=20, build=build,
    summary="MAE: a ViT reconstructing 75% hidden patches (He et al. 2022)",
    training=per_profile(quick=dict(epochs=8),
                         full=dict(epochs=200, optimizer="adamw", lr=3e-4, weight_decay=0.05, warmup_epochs=10)),
    settings=per_profile(dict(image_size=32, patch_size=4, mask_ratio=0.75, normalize_target=True),
                         quick=dict(embed_dim=96, depth=3, num_heads=4, decoder_dim=64, decoder_depth=1),
                         full=dict(embed_dim=192, depth=6, num_heads=6, decoder_dim=128, decoder_depth=4)))
