"""A small Vision Transformer for 32x32 images and MAE's light decoder (Dosovitskiy et al., 2021;
He et al., 2022).

The encoder can run on a subset of the patches (`TinyViT.forward_tokens`), which is what MAE's
encoder does with the visible ones; the decoder puts mask tokens back at the hidden positions.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import check_float_images
from .networks import Normalize
from .patches import check_patch_size, patchify


def sincos_position_embedding_2d(
    embed_dim: int, grid_height: int, grid_width: int, device: torch.device | str | None = None
) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings (Vaswani et al., 2017; He et al., 2022).

    For the patch at grid row r and column c, the first embed_dim / 2 entries
    encode r and the second half encode c; each half is
    [sin(pos * w_0), ..., sin(pos * w_{K-1}), cos(pos * w_0), ..., cos(pos * w_{K-1})]
    with K = embed_dim / 4 and w_k = 10000^(-k / K).

    Returns:
        float (grid_height * grid_width, embed_dim), rows in patch raster order.
    """
    if embed_dim < 4 or embed_dim % 4:
        raise ValueError(f"embed_dim must be a positive multiple of 4, got {embed_dim}; pass e.g. 128")
    quarter = embed_dim // 4
    frequencies = 10000.0 ** (-torch.arange(quarter, dtype=torch.float64, device=device) / quarter)
    rows = torch.arange(grid_height, dtype=torch.float64, device=device).repeat_interleave(grid_width)
    cols = torch.arange(grid_width, dtype=torch.float64, device=device).repeat(grid_height)

    def encode(positions: Tensor) -> Tensor:
        angles = positions[:, None] * frequencies[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


def _transformer_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    """Pre-norm transformer blocks: x + MSA(LN(x)), then x + MLP(LN(x)) with GELU."""
    if dim % num_heads:
        raise ValueError(f"embedding dim {dim} must be divisible by num_heads {num_heads}; pass num_heads such as 4")
    return nn.ModuleList(
        nn.TransformerEncoderLayer(
            d_model=dim,
            nhead=num_heads,
            dim_feedforward=int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        for _ in range(depth)
    )


class TinyViT(nn.Module):
    """Small Vision Transformer encoder for MAE on 32x32 images (Dosovitskiy et al., 2021; He et al., 2022).

    Pipeline: CIFAR normalisation, `patchify` (p = 4 gives L = 64 patches), a
    linear patch embedding, fixed 2-D sine-cosine position embeddings, a
    learned [CLS] token (position embedding zero), `depth` pre-norm transformer
    blocks and a final LayerNorm.

    `forward_tokens(images, keep_indices)` runs the blocks on the visible patches
    only: MAE's encoder never sees mask tokens, which is what makes it cheap at
    a 75% mask ratio. `forward(images)` encodes all patches and returns the mean
    of the patch tokens (CLS excluded) as the (N, feature_dim) evaluation
    feature; MAE reports that mean pooling works as well as CLS.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, embed_dim: int = 128, depth: int = 4,
                 num_heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        check_patch_size(patch_size, image_size, image_size)
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.n_patches = self.grid_size**2
        self.feature_dim = embed_dim
        self.normalize = Normalize()
        self.patch_embed = nn.Linear(patch_size * patch_size * 3, embed_dim)
        self.register_buffer(
            "position_embedding", sincos_position_embedding_2d(embed_dim, self.grid_size, self.grid_size)[None]
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks = _transformer_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim)

    def forward_tokens(self, images: Tensor, keep_indices: Tensor | None = None) -> Tensor:
        """Encode the visible patches.

        Args:
            images: x, float (N, 3, image_size, image_size) in [0, 1].
            keep_indices: long (N, L_keep) visible patch indices from
                `random_masking`, or None for all L patches.

        Returns:
            (N, 1 + L_keep, embed_dim): the [CLS] token first, then one token per
            visible patch in the order of `keep_indices`.
        """
        check_float_images(images)
        if images.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"TinyViT was built for (3, {self.image_size}, {self.image_size}) images, got "
                f"{tuple(images.shape[1:])}; resize the images or build TinyViT(image_size=...)"
            )
        tokens = self.patch_embed(patchify(self.normalize(images), self.patch_size)) + self.position_embedding
        if keep_indices is not None:
            if keep_indices.ndim != 2 or keep_indices.shape[0] != images.shape[0] or keep_indices.dtype != torch.long:
                raise ValueError(
                    f"keep_indices must be long (N={images.shape[0]}, L_keep), got {tuple(keep_indices.shape)} "
                    f"{keep_indices.dtype}; pass the first output of random_masking"
                )
            index = keep_indices.to(tokens.device)[..., None].expand(-1, -1, tokens.shape[-1])
            tokens = tokens.gather(1, index)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, images: Tensor) -> Tensor:
        """Images (N, 3, H, W) in [0, 1] -> mean-pooled patch features (N, feature_dim)."""
        return self.forward_tokens(images)[:, 1:].mean(dim=1)


class MAEDecoder(nn.Module):
    """Light MAE decoder that predicts the pixels of every patch (He et al., 2022).

    Projects the encoder tokens to `decoder_dim`, appends one learned mask
    token per hidden patch, un-shuffles with `restore_indices` so every token
    sits at its patch position, adds fixed sine-cosine position embeddings,
    runs `depth` pre-norm transformer blocks and maps each patch token to
    p*p*3 pixel values (in `patchify` order). The [CLS] token passes through
    the blocks and is dropped from the output.
    """

    def __init__(self, encoder_dim: int = 128, image_size: int = 32, patch_size: int = 4, decoder_dim: int = 64,
                 depth: int = 2, num_heads: int = 4, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        check_patch_size(patch_size, image_size, image_size)
        grid_size = image_size // patch_size
        self.n_patches = grid_size**2
        self.embed = nn.Linear(encoder_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer(
            "position_embedding", sincos_position_embedding_2d(decoder_dim, grid_size, grid_size)[None]
        )
        self.blocks = _transformer_blocks(decoder_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(decoder_dim)
        self.head = nn.Linear(decoder_dim, patch_size * patch_size * 3)

    def forward(self, tokens: Tensor, restore_indices: Tensor) -> Tensor:
        """Predict every patch.

        Args:
            tokens: (N, 1 + L_keep, encoder_dim) from `TinyViT.forward_tokens`,
                [CLS] first.
            restore_indices: long (N, L) from `random_masking`.

        Returns:
            (N, L, p*p*3) predicted patches, comparable with `patchify(x, p)`.
        """
        n = tokens.shape[0]
        if restore_indices.shape != (n, self.n_patches):
            raise ValueError(
                f"restore_indices must have shape ({n}, {self.n_patches}), got {tuple(restore_indices.shape)}; "
                "pass the third output of random_masking for the same batch"
            )
        if tokens.ndim != 3 or not 2 <= tokens.shape[1] <= self.n_patches + 1:
            raise ValueError(
                f"tokens must have shape (N, 1 + L_keep, D) with 1 <= L_keep <= {self.n_patches}, got "
                f"{tuple(tokens.shape)}; pass TinyViT.forward_tokens(images, keep_indices)"
            )
        x = self.embed(tokens)
        cls_token, visible = x[:, :1], x[:, 1:]
        n_masked = self.n_patches - visible.shape[1]
        shuffled = torch.cat([visible, self.mask_token.expand(n, n_masked, -1)], dim=1)
        index = restore_indices.to(x.device)[..., None].expand(-1, -1, x.shape[-1])
        ordered = shuffled.gather(1, index) + self.position_embedding
        x = torch.cat([cls_token, ordered], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))[:, 1:]
