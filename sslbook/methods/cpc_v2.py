"""CPC v2 (Henaff et al. 2019): contrastive predictive coding on grids of image patches.

An image x is cut into a grid of overlapping patches; an encoder maps each patch
to a latent z_{i,j}; a context network g_phi that only looks at rows above and at
row i gives c_{i,j}; and W_k c_{i,j} predicts the latent k rows below,
z^_{i+k,j}, scored with InfoNCE against the true z_{i+k,j} and the latents z_l
of other positions and images (the candidate sets of ``sslbook.predictive_coding``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..augment import ViewRecipe, augment
from ..checks import unit_float
from ..predictive_coding import check_prediction_steps, predictive_coding_loss
from ..runs import MethodEntry, per_profile


def cpc_v2_cifar() -> ViewRecipe:
    """The augmentation of the whole image before the grid is cut: a horizontal flip only."""
    return ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0)


def cpc_v2_patch_cifar(patch_size: int = 8) -> ViewRecipe:
    """The augmentation of every patch on its own: colour jitter (p = 0.8) and grayscale (p = 0.25)."""
    return ViewRecipe(output_size=patch_size, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                      jitter_p=0.8, grayscale_p=0.25)


def patch_grid(images: torch.Tensor, patch_size: int = 8, stride: int = 4) -> torch.Tensor:
    """Cut images (N, C, H, W) into the grid of overlapping patches x_{i,j} (Henaff et al., 2019).

    Patch (i, j) covers rows i*stride .. i*stride + patch_size - 1 and the same
    columns; a 32x32 image with 8x8 patches and stride 4 gives a 7x7 grid.
    Returns (N, R, S, C, patch_size, patch_size) with R = (H - patch_size) // stride + 1
    rows and S columns (likewise); pixels past the last full patch are not used.
    """
    if images.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}; add a batch dimension")
    if patch_size < 1 or stride < 1:
        raise ValueError(f"patch_size and stride must be >= 1, got {patch_size} and {stride}; pass e.g. 8 and 4")
    if patch_size > min(images.shape[-2:]):
        raise ValueError(
            f"patch_size {patch_size} is larger than the images ({images.shape[-2]}x{images.shape[-1]}); "
            "pass a smaller patch_size"
        )
    patches = images.unfold(2, patch_size, stride).unfold(3, patch_size, stride)  # (N, C, R, S, p, p)
    return patches.permute(0, 2, 3, 1, 4, 5)


class PatchGridEncoder(nn.Module):
    """The patch encoder applied to every patch of the grid: z_{i,j} = g_enc(x_{i,j}).

    ``latent_grid(images)`` gives the latents (N, D, R, S). ``forward(images)``
    averages them over the grid: the image representation used for evaluation
    (images (N, 3, H, W) in [0, 1]; the patch encoder normalises them itself).
    """

    def __init__(self, patch_encoder: nn.Module, patch_size: int = 8, stride: int = 4):
        super().__init__()
        if not hasattr(patch_encoder, "feature_dim"):
            raise ValueError("patch_encoder needs a feature_dim attribute (the size D of z); use a book encoder")
        self.patch_encoder = patch_encoder
        self.patch_size, self.stride = patch_size, stride
        self.feature_dim = patch_encoder.feature_dim

    def latent_grid(self, images: torch.Tensor) -> torch.Tensor:
        patches = patch_grid(images, self.patch_size, self.stride)  # (N, R, S, C, p, p)
        n, rows, columns = patches.shape[:3]
        z = self.patch_encoder(patches.flatten(0, 2))  # one latent per patch, (N*R*S, D)
        return z.view(n, rows, columns, -1).permute(0, 3, 1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.latent_grid(images).mean(dim=(2, 3))


class CausalRowConv2d(nn.Conv2d):
    """A convolution whose output at row i sees input rows i - kernel_height + 1 .. i only.

    The input is padded with kernel_height - 1 rows on top and none below, and
    symmetrically left and right (odd kernel width), so the grid keeps its size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int] = (3, 3)):
        height, width = kernel_size
        if height < 1 or width < 1 or width % 2 == 0:
            raise ValueError(
                f"kernel_size must be (height >= 1, odd width), got {kernel_size}; pass e.g. (3, 3)"
            )
        super().__init__(in_channels, out_channels, kernel_size, padding=0)
        self.causal_padding = (width // 2, width // 2, height - 1, 0)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.causal_padding))


class ContextNetwork(nn.Module):
    """g_phi: c_{i,j} from the latents of rows <= i (the paper's context sees whole rows above).

    A 1x1 input projection, then residual blocks of two causal row convolutions.
    No batch normalisation: its batch statistics would mix rows below into c.
    """

    def __init__(self, latent_dim: int, context_dim: int, n_blocks: int = 2, kernel_size: tuple[int, int] = (3, 3)):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}; pass e.g. 2")
        self.project = nn.Conv2d(latent_dim, context_dim, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), CausalRowConv2d(context_dim, context_dim, kernel_size),
                          nn.ReLU(), CausalRowConv2d(context_dim, context_dim, kernel_size))
            for _ in range(n_blocks)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, D, R, S) -> c (N, context_dim, R, S), c_{i,j} = g_phi(z_{<=i, .})."""
        c = self.project(z)
        for block in self.blocks:
            c = c + block(c)
        return c


NORMALISATIONS = ("batch", "layer")  # of the patch encoder: its own BatchNorm, or CPC v2's layer normalisation


def with_layer_norm(patch_encoder: nn.Module) -> nn.Module:
    """``patch_encoder`` with every BatchNorm2d replaced, in place, by GroupNorm(1, C): CPC v2's layer norm.

    Batch statistics mix the patches of an image, and the images, into each latent, which the
    contrastive prediction can exploit (Henaff et al., 2019). GroupNorm with one group normalises
    each patch on its own over all its channels and positions, as LayerNorm over (C, H, W) does,
    but for feature maps of any size and with a scale and shift per channel, like the BatchNorm it replaces.
    """
    replaced = 0
    for module in list(patch_encoder.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.GroupNorm(1, child.num_features, eps=child.eps, affine=child.affine))
                replaced += 1
    if not replaced:
        raise ValueError(f"normalisation='layer' replaces the patch encoder's BatchNorm2d layers, but "
                         f"{type(patch_encoder).__name__} has none; keep normalisation='batch' for it")
    return patch_encoder


# The direction a context network reads the grid in, as the transform that makes it "top to bottom".
DIRECTIONS = {
    "down": lambda z: z,  # c_{i,j} from rows <= i predicts rows below (the seed's equation)
    "up": lambda z: z.flip(2),  # from rows >= i, predicts rows above
    "right": lambda z: z.transpose(2, 3),  # from columns <= j, predicts columns to the right
    "left": lambda z: z.transpose(2, 3).flip(2),  # from columns >= j, predicts columns to the left
}


class CPCv2(nn.Module):
    """CPC v2 (Henaff, Srinivas, De Fauw, Razavi, Doersch, Eslami & van den Oord, 2019).

    patch_encoder: the network applied to each patch (a book encoder with
    ``feature_dim``; 8x8 patches go through the profile's CNN). prediction_steps:
    the offsets k of the rows predicted below; k >= 2 by default, because rows i
    and i+1 overlap when stride < patch_size, which would let the model read the
    answer off shared pixels. n_candidates: N, the candidate set of each
    prediction (1 positive + N-1 negatives from other positions and images).
    directions: which ways the grid is read, each with its own context network
    g_phi and maps W_k; "down" is the seed's equation, and CPC v2 adds "up"
    (keys of ``DIRECTIONS``). recipe: optional image-level augmentation before
    the grid is cut; patch_recipe: optional augmentation of every patch on its own.
    normalisation: "batch" keeps the patch encoder's BatchNorm; "layer" replaces it
    by a per-patch normalisation (``with_layer_norm``), as CPC v2 does.
    """

    def __init__(self, patch_encoder: nn.Module, context_dim: int = 128, prediction_steps: tuple[int, ...] = (2, 3, 4),
                 n_candidates: int = 256, directions: tuple[str, ...] = ("down", "up"), patch_size: int = 8,
                 stride: int = 4, n_context_blocks: int = 2, recipe: ViewRecipe | None = None,
                 patch_recipe: ViewRecipe | None = None, normalisation: str = "batch"):
        super().__init__()
        check_prediction_steps(prediction_steps, "row offsets", (2, 3, 4))
        if n_candidates < 2:
            raise ValueError(f"n_candidates must be >= 2 (a positive and a negative), got {n_candidates}; pass e.g. 256")
        unknown = [d for d in directions if d not in DIRECTIONS]
        if not directions or unknown or len(set(directions)) != len(directions):
            raise ValueError(
                f"directions must be distinct names from {sorted(DIRECTIONS)}, got {directions}; pass e.g. ('down', 'up')"
            )
        if patch_recipe is not None and patch_recipe.output_size != patch_size:
            raise ValueError(
                f"patch_recipe.output_size is {patch_recipe.output_size} but patches are {patch_size} pixels; "
                f"pass a recipe with output_size={patch_size}"
            )
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}; "
                             "pass 'layer' for CPC v2's layer normalisation")
        if normalisation == "layer":  # not kept as an attribute: the GroupNorm layers show it in the architecture
            patch_encoder = with_layer_norm(patch_encoder)
        self.encoder = PatchGridEncoder(patch_encoder, patch_size, stride)  # g_enc on every patch
        latent_dim = self.encoder.feature_dim
        self.directions = tuple(directions)
        self.prediction_steps = tuple(prediction_steps)
        self.contexts = nn.ModuleDict({d: ContextNetwork(latent_dim, context_dim, n_context_blocks)
                                       for d in self.directions})  # g_phi, one per direction
        self.predictors = nn.ModuleDict({d: nn.ModuleList(nn.Linear(context_dim, latent_dim, bias=False)
                                                          for _ in self.prediction_steps)
                                         for d in self.directions})  # W_k, one set per direction
        self.n_candidates = n_candidates
        self.recipe, self.patch_recipe = recipe, patch_recipe

    def latents(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_{i,j} for every patch of uint8 or [0, 1] images, with the augmentations when set."""
        x = unit_float(images)
        if self.recipe is not None:
            x = augment(x, self.recipe, generator)
        if self.patch_recipe is None:
            return self.encoder.latent_grid(x)
        patches = patch_grid(x, self.encoder.patch_size, self.encoder.stride)
        n, rows, columns = patches.shape[:3]
        patches = augment(patches.flatten(0, 2), self.patch_recipe, generator)
        z = self.encoder.patch_encoder(patches)
        return z.view(n, rows, columns, -1).permute(0, 3, 1, 2)

    def predictions(self, z: torch.Tensor, direction: str = "down") -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each k: (z^_{i+k,j} = W_k c_{i,j}, z_{i+k,j}) over all images and positions, as (M_k, D) rows.

        z: (N, D, R, S) latents. For a direction other than "down" the grid is
        first transformed so that the direction reads top to bottom.
        """
        if direction not in self.contexts:
            raise ValueError(f"unknown direction {direction!r}; this model reads {self.directions}")
        z = DIRECTIONS[direction](z)
        rows = z.shape[2]
        if max(self.prediction_steps) >= rows:
            raise ValueError(
                f"the largest prediction step {max(self.prediction_steps)} needs a grid with more rows, "
                f"got {rows}; use smaller steps or a finer grid"
            )
        c = self.contexts[direction](z).permute(0, 2, 3, 1)  # c_{i,j}, channels last
        z = z.permute(0, 2, 3, 1)
        pairs = []
        for k, predictor in zip(self.prediction_steps, self.predictors[direction]):
            predicted = predictor(c[:, :rows - k])  # W_k c_{i,j} for rows i = 0 .. R-1-k
            target = z[:, k:]  # z_{i+k,j}
            pairs.append((predicted.flatten(0, 2), target.flatten(0, 2)))
        return pairs

    def training_loss(self, batch) -> dict:
        z = self.latents(batch.images, batch.generator)
        pairs = [pair for direction in self.directions for pair in self.predictions(z, direction)]
        output = predictive_coding_loss(pairs, self.n_candidates, batch.generator)
        return {"loss": output["loss"], "accuracy": output["accuracy"].item()}


def build(profile, train_data, *, context_dim: int, n_context_blocks: int, prediction_steps: tuple[int, ...],
          n_candidates: int, directions: tuple[str, ...], normalisation: str) -> CPCv2:
    return CPCv2(profile.encoder(), context_dim=context_dim, n_context_blocks=n_context_blocks,
                 prediction_steps=prediction_steps, n_candidates=n_candidates, directions=directions,
                 recipe=cpc_v2_cifar(), patch_recipe=cpc_v2_patch_cifar(), normalisation=normalisation)


ENTRY = MethodEntry(
    name="cpc_v2", title="CPC v2", chapter="book/contrastive/cpc_v2.ipynb", order=7, build=build,
    summary="CPC v2: InfoNCE prediction of patch latents in four directions (Henaff et al. 2019)",
    training=per_profile(quick=dict(epochs=3, batch_size=32, lr=5e-3),
                         full=dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4)),
    settings=per_profile(dict(prediction_steps=(2, 3, 4), directions=("down", "up", "right", "left"),
                              normalisation="batch"),
                         quick=dict(context_dim=64, n_context_blocks=1, n_candidates=128),
                         full=dict(context_dim=256, n_context_blocks=2, n_candidates=256)))
