"""Jigsaw Puzzle (Noroozi & Favaro 2016): shuffle nine tiles, classify which permutation was applied.

The image is cut into a 3x3 grid of tiles with gaps (``sslbook.pretext.jigsaw_tiles``);
the tiles are shuffled by one permutation out of a fixed set of P permutations
chosen for large Hamming distance (``sslbook.pretext.make_permutation_set``), and
the index of that permutation is the label. The network is the paper's
"context-free network": one shared encoder f(.) sees each tile on its own, the
nine tile features are concatenated in the order the tiles are presented, and an
MLP h(.) classifies the permutation,

    p(permutation | tiles) = softmax(h([f(tile_1), ..., f(tile_9)])),

trained with cross-entropy. Because f never sees two tiles at once, it can only
solve the puzzle by recognising what each tile shows (an eye, a wheel, sky), which
is what transfers to other tasks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pretext import jigsaw_tiles, unshuffle


class JigsawPuzzle(nn.Module):
    """Context-free network: a shared tile encoder f, concatenation in tile order, an MLP h over P permutations.

    Args:
        encoder: f, applied to each tile on its own (the profile's backbone works on 8x8 tiles).
        permutations: the permutation set (P, grid^2); row l is the shuffle with label l.
        hidden_dim: width of the hidden layer of h.
        grid, tile_size, jitter: the tiling of ``jigsaw_tiles`` (defaults: 3x3 tiles of cell - 2 px,
            jittered by up to the full slack).
    """

    def __init__(self, encoder: nn.Module, permutations: torch.Tensor, hidden_dim: int = 512, grid: int = 3,
                 tile_size: int | None = None, jitter: int | None = None):
        super().__init__()
        if permutations.ndim != 2 or permutations.shape[1] != grid * grid:
            raise ValueError(
                f"permutations must have shape (P, grid*grid) = (P, {grid * grid}), got {tuple(permutations.shape)}; "
                f"build them with sslbook.pretext.make_permutation_set(n_tiles={grid * grid})"
            )
        if permutations.shape[0] < 2:
            raise ValueError("the permutation set needs at least 2 permutations to make a classification task; "
                             "pass make_permutation_set(n_permutations=100)")
        self.encoder = encoder  # f(.), shared by the tiles
        self.register_buffer("permutations", permutations.long().clone())
        self.grid, self.tile_size, self.jitter = grid, tile_size, jitter
        n_tiles = grid * grid
        self.classifier = nn.Sequential(  # h(.)
            nn.Linear(n_tiles * encoder.feature_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True), nn.Linear(hidden_dim, permutations.shape[0]))

    @property
    def n_permutations(self) -> int:
        return self.permutations.shape[0]

    def make_puzzles(self, images: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffled tiles (N, grid^2, C, t, t) and permutation labels (N,) of float images in [0, 1]."""
        return jigsaw_tiles(images, self.permutations, self.grid, self.tile_size, self.jitter, generator)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Permutation logits (N, P) of shuffled tiles (N, T, C, t, t): f on every tile, concatenate, h."""
        n, n_tiles = tiles.shape[:2]
        if n_tiles != self.grid * self.grid:
            raise ValueError(f"expected {self.grid * self.grid} tiles per puzzle, got {n_tiles}; "
                             "build the tiles with make_puzzles")
        tile_features = self.encoder(tiles.flatten(0, 1))  # f(tile) for all N*T tiles in one pass
        return self.classifier(tile_features.reshape(n, n_tiles * tile_features.shape[1]))

    def training_loss(self, batch) -> dict:
        tiles, labels = self.make_puzzles(batch.images.float() / 255, batch.generator)
        logits = self(tiles)
        loss = F.cross_entropy(logits, labels)
        return {"loss": loss, "accuracy": (logits.argmax(1) == labels).float().mean().item()}

    @torch.no_grad()
    def solve(self, tiles: torch.Tensor) -> torch.Tensor:
        """The tiles put back in row-major order by the predicted permutation (N, T, C, t, t)."""
        was_training = self.training
        self.eval()
        predicted = self(tiles).argmax(1)
        self.train(was_training)
        return unshuffle(tiles, self.permutations, predicted)


def assemble_tiles(tiles: torch.Tensor, grid: int = 3, gap: int = 1) -> torch.Tensor:
    """Lay float tiles (N, grid^2, C, t, t) in [0, 1] out row-major on a grid, ``gap`` white pixels apart.

    Returns images (N, C, grid*t + (grid-1)*gap, same) for display.
    """
    if tiles.ndim != 5 or tiles.shape[1] != grid * grid:
        raise ValueError(f"tiles must have shape (N, grid^2, C, t, t) = (N, {grid * grid}, C, t, t), "
                         f"got {tuple(tiles.shape)}; pass the output of jigsaw_tiles with the same grid")
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}; pass 0 to lay the tiles edge to edge")
    n, _, channels, size, _ = tiles.shape
    padded = F.pad(tiles, (0, gap, 0, gap), value=1.0)
    side = grid * (size + gap)
    rows = padded.reshape(n, grid, grid, channels, size + gap, size + gap).permute(0, 3, 1, 4, 2, 5)
    return rows.reshape(n, channels, side, side)[..., :side - gap, :side - gap]
