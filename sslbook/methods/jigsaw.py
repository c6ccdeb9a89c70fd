"""Jigsaw Puzzle (Noroozi & Favaro 2016): shuffle nine tiles, classify which permutation was applied.

The image is cut into a 3x3 grid of tiles with gaps (``jigsaw_tiles``);
the tiles are shuffled by one permutation out of a fixed set of P permutations
chosen for large Hamming distance (``make_permutation_set``), and
the index of that permutation is the label. The network is the paper's
"context-free network": one shared encoder f(.) sees each tile on its own, the
nine tile features are concatenated in the order the tiles are presented, and an
MLP h(.) classifies the permutation,

    p(permutation | tiles) = softmax(h([f(tile_1), ..., f(tile_9)])),

trained with cross-entropy. Because f never sees two tiles at once, it can only
solve the puzzle by recognising what each tile shows (an eye, a wheel, sky), which
is what transfers to other tasks. Two of the paper's counter-measures against
shortcuts are optional: each tile standardised on its own (``standardise_tiles``)
and tiles turned to grayscale at random (``grayscale_tiles``).
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..augment import rgb_to_grayscale
from ..checks import check_float_images, check_non_negative, check_unit_interval, unit_float
from ..patch_sampling import crop_square_patches, draw_device, random_ints
from ..patches import standardise_patches
from ..runs import MethodEntry, per_profile

_MAX_TILES_TO_ENUMERATE = 9


@functools.lru_cache(maxsize=None)
def _all_permutations_by_position(n_tiles: int) -> np.ndarray:
    """All n_tiles! permutations in lexicographic order, stored position-major: (n_tiles, n_tiles!) uint8."""
    return np.ascontiguousarray(np.array(list(itertools.permutations(range(n_tiles))), dtype=np.uint8).T)


def min_hamming_distance(permutations: torch.Tensor) -> int:
    """Smallest Hamming distance between two rows of a permutation set (P, n_tiles), P >= 2.

    The Hamming distance of two permutations is the number of positions where they
    differ; Noroozi & Favaro (2016) report it for each permutation set they try.
    """
    if permutations.ndim != 2 or permutations.shape[0] < 2:
        raise ValueError(
            f"permutations must be a (P, n_tiles) tensor with P >= 2, got shape {tuple(permutations.shape)}; "
            "pass a set built by make_permutation_set"
        )
    distances = (permutations[:, None, :] != permutations[None, :, :]).sum(-1)
    distances.fill_diagonal_(permutations.shape[1] + 1)
    return int(distances.min())


def make_permutation_set(
    n_permutations: int = 100,
    n_tiles: int = 9,
    min_hamming: int | None = None,
    seed: int = 0,
    criterion: str = "min",
) -> torch.Tensor:
    """Greedy permutation set with large Hamming distances (Noroozi & Favaro, 2016, Algorithm 1).

    Start from one permutation drawn uniformly (seeded by ``seed``) out of all
    n_tiles! permutations; then repeatedly add the not yet chosen permutation that
    is farthest from the chosen set, ties going to the lexicographically first.
    "Farthest" is, with ``criterion="min"``, the largest minimum Hamming distance
    to the chosen set (max-min, which directly pushes up the set's minimum
    distance); with ``criterion="mean"`` it is the largest summed distance, which is
    what Algorithm 1 of the paper writes (D_bar = 1^T D). A running distance vector
    over all n_tiles! candidates is updated once per added permutation: O(P n_tiles!).

    Args:
        n_permutations: P, the number of classes of the jigsaw task (the paper: 100 to 1000).
        n_tiles: number of tiles (9 for the 3x3 puzzle); at most 9 so that n_tiles! stays enumerable.
        min_hamming: if given, every pair of chosen permutations must differ in at least
            this many positions; raises ValueError when the greedy set stops short of P.
        seed: seed of the random first permutation.
        criterion: "min" (max-min distance) or "mean" (the paper's summed distance).

    Returns:
        LongTensor (P, n_tiles) on the CPU; row p is the permutation with label p.
        Report its minimum distance with ``min_hamming_distance``.
    """
    if not 2 <= n_tiles <= _MAX_TILES_TO_ENUMERATE:
        raise ValueError(
            f"n_tiles must lie in [2, {_MAX_TILES_TO_ENUMERATE}] (all n_tiles! permutations are enumerated), "
            f"got {n_tiles}; use a 2x2 or 3x3 grid (4 or 9 tiles)"
        )
    n_candidates = math.factorial(n_tiles)
    if not 1 <= n_permutations <= n_candidates:
        raise ValueError(
            f"n_permutations must lie in [1, {n_tiles}! = {n_candidates}], got {n_permutations}; "
            f"lower n_permutations or use more tiles"
        )
    if criterion not in ("min", "mean"):
        raise ValueError(f"criterion must be 'min' or 'mean', got {criterion!r}; pass 'min' (max-min distance)")
    if min_hamming is not None and not 1 <= min_hamming <= n_tiles:
        raise ValueError(
            f"min_hamming must lie in [1, n_tiles={n_tiles}], got {min_hamming}; pass a distance such as {n_tiles - 1}"
        )

    # NumPy, single-threaded: these many small passes over 9! entries run far
    # faster than torch's multi-threaded kernels on a busy CPU.
    candidates = _all_permutations_by_position(n_tiles)
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(n_candidates, (1,), generator=generator))]
    min_distance = np.full(n_candidates, n_tiles, dtype=np.int16)
    summed_distance = np.zeros(n_candidates, dtype=np.int32)
    is_chosen = np.zeros(n_candidates, dtype=bool)
    while True:
        newest = chosen[-1]
        is_chosen[newest] = True
        distance_to_newest = np.zeros(n_candidates, dtype=np.int16)
        for position in range(n_tiles):
            distance_to_newest += candidates[position] != candidates[position, newest]
        np.minimum(min_distance, distance_to_newest, out=min_distance)
        summed_distance += distance_to_newest
        if len(chosen) == n_permutations:
            break
        score = min_distance if criterion == "min" else summed_distance
        best = int(np.where(is_chosen, -1, score).argmax())
        if min_hamming is not None and min_distance[best] < min_hamming:
            raise ValueError(
                f"the greedy selection (criterion={criterion!r}, seed={seed}) finds only {len(chosen)} permutations "
                f"of {n_tiles} tiles with pairwise Hamming distance >= {min_hamming}, but {n_permutations} were "
                f"asked for; lower min_hamming or n_permutations (at most {len(chosen)})"
            )
        chosen.append(best)
    return torch.from_numpy(candidates[:, chosen].T.astype(np.int64))


def _check_permutations(permutations: torch.Tensor, n_tiles: int) -> None:
    if permutations.ndim != 2 or permutations.shape[1] != n_tiles:
        raise ValueError(
            f"permutations must have shape (P, grid*grid) = (P, {n_tiles}), got {tuple(permutations.shape)}; "
            f"build them with make_permutation_set(n_tiles={n_tiles})"
        )
    identity = torch.arange(n_tiles, device=permutations.device)
    if not (permutations.sort(dim=1).values == identity).all():
        raise ValueError(
            f"every row of permutations must be a permutation of 0..{n_tiles - 1}; "
            "build them with make_permutation_set"
        )


def jigsaw_tiles(
    images: torch.Tensor,
    permutations: torch.Tensor,
    grid: int = 3,
    tile_size: int | None = None,
    jitter: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled jigsaw tiles and the index of their permutation (Noroozi & Favaro, 2016).

    The image is divided into grid x grid cells of cell = (H // grid) x (W // grid)
    pixels (the central grid*cell block; for CIFAR 32x32 and grid 3: the central
    30x30, cells of 10 px). Inside each cell a square tile of ``tile_size`` pixels
    is cut, centred and then shifted by a random integer in [-jitter, jitter] per
    axis and per tile: neighbouring tiles are on average cell - tile_size pixels
    apart (at least cell - tile_size - 2 * jitter) and their edges do not line up,
    which removes low-level shortcuts such as continuing lines. Each image draws a
    label uniformly from the P permutations and its tiles are shuffled by it.

    Convention: tiles[n, j] is the tile cut at original (row-major) position
    permutations[labels[n], j]. ``unshuffle`` undoes it.

    Args:
        images: x, float (N, C, H, W).
        permutations: the permutation set (P, grid*grid), e.g. from make_permutation_set.
        grid: tiles per side (3 in the paper).
        tile_size: tile side in pixels; default min(cell_h, cell_w) - 2 (8 px on CIFAR).
        jitter: largest random shift per axis; default the full slack (cell - tile_size) // 2.
        generator: random source of the labels and the shifts.

    Returns:
        tiles (N, grid*grid, C, tile_size, tile_size) and labels (N,) long.
    """
    check_float_images(images)
    n_tiles = grid * grid
    _check_permutations(permutations, n_tiles)
    n, _, height, width = images.shape
    cell_h, cell_w = height // grid, width // grid
    cell = min(cell_h, cell_w)
    if tile_size is None:
        tile_size = cell - 2
    if tile_size < 1 or tile_size > cell:
        raise ValueError(
            f"tile_size must lie in [1, cell] where cell = min({height}, {width}) // grid {grid} = {cell} px, "
            f"got tile_size {tile_size} (grid*tile_size = {grid * tile_size} for an image of {height}x{width}); "
            f"pass tile_size <= {cell}, a smaller grid, or larger images"
        )
    slack_h, slack_w = cell_h - tile_size, cell_w - tile_size
    max_jitter = min(slack_h, slack_w) // 2
    if jitter is None:
        jitter = max_jitter
    check_non_negative(jitter, "jitter", "0 (no jitter)")
    if jitter > max_jitter:
        raise ValueError(
            f"jitter {jitter} moves a tile of {tile_size} px out of its cell of {cell_h}x{cell_w} px "
            f"(at most (cell - tile_size) // 2 = {max_jitter}); pass jitter <= {max_jitter} or a smaller tile_size"
        )

    device = images.device
    position = torch.arange(n_tiles, device=device)
    cell_top = (height - grid * cell_h) // 2 + (position // grid) * cell_h + slack_h // 2
    cell_left = (width - grid * cell_w) // 2 + (position % grid) * cell_w + slack_w // 2
    top = cell_top + random_ints(-jitter, jitter, (n, n_tiles), generator, device)
    left = cell_left + random_ints(-jitter, jitter, (n, n_tiles), generator, device)
    image_index = torch.arange(n, device=device).repeat_interleave(n_tiles)
    ordered = crop_square_patches(images, image_index, top.flatten(), left.flatten(), tile_size)
    ordered = ordered.reshape(n, n_tiles, *ordered.shape[1:])

    labels = random_ints(0, permutations.shape[0] - 1, (n,), generator, device)
    order = permutations.to(device=device, dtype=torch.long)[labels]
    tiles = ordered[torch.arange(n, device=device)[:, None], order]
    return tiles, labels


def unshuffle(tiles: torch.Tensor, permutations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Put jigsaw tiles back in row-major order: the inverse of the shuffle in ``jigsaw_tiles``.

    Args:
        tiles: shuffled tiles (N, T, C, t, t) with tiles[n, j] from original position permutations[labels[n], j].
        permutations: the permutation set (P, T).
        labels: permutation index per image (N,).

    Returns:
        ordered (N, T, C, t, t) with ordered[n, i] the tile cut at original position i.
    """
    _check_permutations(permutations, tiles.shape[1])
    order = permutations.to(device=tiles.device, dtype=torch.long)[labels.to(tiles.device)]
    inverse = order.argsort(dim=1)
    return tiles[torch.arange(tiles.shape[0], device=tiles.device)[:, None], inverse]


def standardise_tiles(tiles: torch.Tensor) -> torch.Tensor:
    """Each channel of each tile (N, T, C, t, t) standardised over its own pixels (``standardise_patches``).

    Against low-level statistics (Noroozi & Favaro, 2016): neighbouring tiles share their mean
    brightness, contrast and colour, which would let the network match tiles without recognising them.
    """
    return standardise_patches(tiles.flatten(-2)).view_as(tiles)


def grayscale_tiles(tiles: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each RGB tile of (N, T, 3, t, t) in [0, 1] replaced by its luma in all 3 channels with probability p.

    Against chromatic aberration (Noroozi & Favaro, 2016): a lens shifts the colour channels
    more towards the image's edges, so a tile's colour fringes tell where it was cut. One draw
    per tile from ``generator``; none when p = 0.
    """
    check_unit_interval(p, "tile_grayscale_p", "0.3")
    if p == 0:
        return tiles
    device = tiles.device
    chosen = torch.rand(tiles.shape[:2], generator=generator, device=draw_device(generator, device)).to(device) < p
    return rgb_to_grayscale(tiles.flatten(0, 1), chosen.flatten()).view_as(tiles)


class JigsawPuzzle(nn.Module):
    """Context-free network: a shared tile encoder f, concatenation in tile order, an MLP h over P permutations.

    Args:
        encoder: f, applied to each tile on its own (the profile's backbone works on 8x8 tiles).
        permutations: the permutation set (P, grid^2); row l is the shuffle with label l.
        hidden_dim: width of the hidden layer of h.
        grid, tile_size, jitter: the tiling of ``jigsaw_tiles`` (defaults: 3x3 tiles of cell - 2 px,
            jittered by up to the full slack).
        normalise_tiles: standardise every tile on its own before f (``standardise_tiles``).
        tile_grayscale_p: the probability that a training tile is turned to grayscale (``grayscale_tiles``).
    """

    def __init__(self, encoder: nn.Module, permutations: torch.Tensor, hidden_dim: int = 512, grid: int = 3,
                 tile_size: int | None = None, jitter: int | None = None, normalise_tiles: bool = False,
                 tile_grayscale_p: float = 0.0):
        super().__init__()
        _check_permutations(permutations, grid * grid)
        if permutations.shape[0] < 2:
            raise ValueError("the permutation set needs at least 2 permutations to make a classification task; "
                             "pass make_permutation_set(n_permutations=100)")
        if not isinstance(normalise_tiles, bool):
            raise ValueError(f"normalise_tiles must be True or False, got {normalise_tiles!r}; "
                             "pass normalise_tiles=True to standardise each tile on its own")
        check_unit_interval(tile_grayscale_p, "tile_grayscale_p", "0.3")
        # Private, so that describe_run leaves them out and the default run keeps its fingerprint;
        # extra_repr names them in the architecture when they are on.
        self._normalise_tiles, self._tile_grayscale_p = normalise_tiles, tile_grayscale_p
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

    def extra_repr(self) -> str:
        """The counter-measures against shortcuts that are on (none by default)."""
        on = {"normalise_tiles": self._normalise_tiles, "tile_grayscale_p": self._tile_grayscale_p}
        return ", ".join(f"{name}={value!r}" for name, value in on.items() if value)

    def make_puzzles(self, images: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffled tiles (N, grid^2, C, t, t) and permutation labels (N,) of float images in [0, 1]."""
        return jigsaw_tiles(images, self.permutations, self.grid, self.tile_size, self.jitter, generator)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """Permutation logits (N, P) of shuffled tiles (N, T, C, t, t): f on every tile, concatenate, h.

        With ``normalise_tiles`` every tile is standardised on its own first.
        """
        n, n_tiles = tiles.shape[:2]
        if n_tiles != self.grid * self.grid:
            raise ValueError(f"expected {self.grid * self.grid} tiles per puzzle, got {n_tiles}; "
                             "build the tiles with make_puzzles")
        if self._normalise_tiles:
            tiles = standardise_tiles(tiles)
        tile_features = self.encoder(tiles.flatten(0, 1))  # f(tile) for all N*T tiles in one pass
        return self.classifier(tile_features.reshape(n, n_tiles * tile_features.shape[1]))

    def training_loss(self, batch) -> dict:
        tiles, labels = self.make_puzzles(unit_float(batch.images), batch.generator)
        logits = self(grayscale_tiles(tiles, self._tile_grayscale_p, batch.generator))
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
    check_non_negative(gap, "gap", "0 (tiles edge to edge)")
    n, _, channels, size, _ = tiles.shape
    padded = F.pad(tiles, (0, gap, 0, gap), value=1.0)
    side = grid * (size + gap)
    rows = padded.reshape(n, grid, grid, channels, size + gap, size + gap).permute(0, 3, 1, 4, 2, 5)
    return rows.reshape(n, channels, side, side)[..., :side - gap, :side - gap]


def build(profile, train_data, *, n_permutations: int, hidden_dim: int, normalise_tiles: bool,
          tile_grayscale_p: float) -> JigsawPuzzle:
    return JigsawPuzzle(profile.encoder(), make_permutation_set(n_permutations), hidden_dim=hidden_dim,
                        normalise_tiles=normalise_tiles, tile_grayscale_p=tile_grayscale_p)


ENTRY = MethodEntry(
    name="jigsaw", title="Jigsaw Puzzle", chapter="book/pretext/jigsaw.ipynb", order=3, build=build,
    summary="solving 3x3 jigsaw puzzles over 100 permutations (Noroozi and Favaro 2016)",
    training=per_profile(quick=dict(epochs=30)),
    # the paper's main model: 1000 permutations of maximal Hamming distance; 100 suit the quick profile's budget
    settings=per_profile(dict(hidden_dim=512, normalise_tiles=False, tile_grayscale_p=0.0), quick=dict(n_permutations=100), full=dict(n_permutations=1000)))
