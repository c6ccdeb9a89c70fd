"""Inputs and pseudo-labels of the pretext tasks of Part I.

Each builder turns a batch of float images x of shape (N, 3, H, W) with values
in [0, 1] into the inputs and the free labels of one pretext task (Zheng 2022,
section 1): rotation, jigsaw puzzle, context prediction, colorization, learning
to count and Exemplar-CNN. Everything runs batched on the device of the images;
random draws take an optional ``torch.Generator`` (on the CPU or on the images'
device) so that a chapter can reproduce its batches. The heads and the training
loops live in the chapters, the losses in ``sslbook.losses``.
"""

import functools
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Shared checks and helpers.
# ---------------------------------------------------------------------------


def _check_images(images: torch.Tensor, name: str = "images") -> None:
    if images.ndim != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor of shape (N, C, H, W), got shape {tuple(images.shape)}; "
            "add a batch dimension with x.unsqueeze(0)"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be float images in [0, 1], got dtype {images.dtype}; "
            "convert uint8 images with x.float() / 255"
        )


def _check_non_negative_int(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}; pass 0 to switch it off")


def _random_ints(
    low: int, high: int, size: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Integers uniform in [low, high] (both included), drawn on the generator's device, returned on ``device``."""
    draw_device = generator.device if generator is not None else device
    return torch.randint(low, high + 1, size, generator=generator, device=draw_device).to(device)


def _random_normal(
    size: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    draw_device = generator.device if generator is not None else device
    return torch.randn(size, generator=generator, device=draw_device, dtype=dtype).to(device)


def _crop_square_patches(
    images: torch.Tensor, image_index: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int
) -> torch.Tensor:
    """Patches (M, C, size, size): patch m is images[image_index[m], :, top[m]:top[m]+size, left[m]:left[m]+size]."""
    offsets = torch.arange(size, device=images.device)
    rows = top[:, None] + offsets
    cols = left[:, None] + offsets
    channels_last = images.permute(0, 2, 3, 1)
    patches = channels_last[image_index[:, None, None], rows[:, :, None], cols[:, None, :]]
    return patches.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------
# Image Rotation (Gidaris et al. 2018): x -> rot(x, k * 90 degrees), label k.
# ---------------------------------------------------------------------------


def rotate_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All four rotations of every image, with the rotation as label (Gidaris et al., 2018).

    The survey rotates the input x by one of [0, 90, 180, 270] degrees and asks the
    network to classify the angle. Here every image appears in all four rotations
    (as in the paper's training), counter-clockwise as ``torch.rot90(x, k, dims=(-2, -1))``.

    Args:
        images: x, float (N, C, H, W) with H == W.

    Returns:
        rotated (4N, C, H, W) and labels (4N,) long, ordered rotation-major:
        rotated[k * N + n] = rot90(images[n], k) and labels[k * N + n] = k.
    """
    _check_images(images)
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(
            f"rotate_batch needs square images so that all rotations share one shape, got {height}x{width}; "
            "crop or resize the images to a square first"
        )
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


# ---------------------------------------------------------------------------
# Jigsaw Puzzle (Noroozi & Favaro 2016): shuffle 9 tiles by one permutation of a
# fixed set chosen for large Hamming distances; the label is its index.
# ---------------------------------------------------------------------------

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
    _check_images(images)
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
    _check_non_negative_int(jitter, "jitter")
    if jitter > max_jitter:
        raise ValueError(
            f"jitter {jitter} moves a tile of {tile_size} px out of its cell of {cell_h}x{cell_w} px "
            f"(at most (cell - tile_size) // 2 = {max_jitter}); pass jitter <= {max_jitter} or a smaller tile_size"
        )

    device = images.device
    position = torch.arange(n_tiles, device=device)
    cell_top = (height - grid * cell_h) // 2 + (position // grid) * cell_h + slack_h // 2
    cell_left = (width - grid * cell_w) // 2 + (position % grid) * cell_w + slack_w // 2
    top = cell_top + _random_ints(-jitter, jitter, (n, n_tiles), generator, device)
    left = cell_left + _random_ints(-jitter, jitter, (n, n_tiles), generator, device)
    image_index = torch.arange(n, device=device).repeat_interleave(n_tiles)
    ordered = _crop_square_patches(images, image_index, top.flatten(), left.flatten(), tile_size)
    ordered = ordered.reshape(n, n_tiles, *ordered.shape[1:])

    labels = _random_ints(0, permutations.shape[0] - 1, (n,), generator, device)
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


# ---------------------------------------------------------------------------
# Context Prediction (Doersch et al. 2015): a centre patch and one of its 8
# neighbours on a 3x3 grid; the label is which neighbour.
# ---------------------------------------------------------------------------

NEIGHBOUR_OFFSETS = torch.tensor([[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 1], [1, -1], [1, 0], [1, 1]])
"""(8, 2) grid offsets (drow, dcol) of neighbour label 0..7: row-major around the centre, skipping it."""


def drop_colours(
    patches: torch.Tensor, noise_scale: float = 0.01, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Colour dropping of Doersch et al. (2015): keep one random colour channel per patch.

    Chromatic aberration lets a network tell where a patch sits in the image from
    the colour fringes alone; the paper removes this shortcut by keeping one of the
    three channels and replacing the two others with Gaussian noise whose standard
    deviation is ~1/100 of the kept channel's. Here the noise has the kept channel's
    mean (images are in [0, 1], not mean-subtracted) and std noise_scale * its std.

    Args:
        patches: float (M, 3, h, w).
        noise_scale: noise std relative to the kept channel's std (0.01 in the paper).
        generator: random source of the kept channel and the noise.

    Returns:
        patches (M, 3, h, w) with exactly one original channel each.
    """
    _check_images(patches, "patches")
    if patches.shape[1] != 3:
        raise ValueError(f"colour dropping needs 3 colour channels, got {patches.shape[1]}; pass RGB patches")
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}; pass 0.01 as in the paper")
    m = patches.shape[0]
    kept = _random_ints(0, 2, (m,), generator, patches.device)
    kept_channel = patches[torch.arange(m, device=patches.device), kept]
    mean = kept_channel.mean(dim=(-2, -1)).reshape(m, 1, 1, 1)
    std = kept_channel.std(dim=(-2, -1)).reshape(m, 1, 1, 1)
    noise = mean + noise_scale * std * _random_normal(tuple(patches.shape), generator, patches.device, patches.dtype)
    keep_mask = (torch.arange(3, device=patches.device) == kept[:, None]).reshape(m, 3, 1, 1)
    return torch.where(keep_mask, patches, noise)


def context_pairs(
    images: torch.Tensor,
    patch_size: int = 8,
    gap: int = 2,
    jitter: int = 1,
    colour_dropping: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A centre patch, one of its eight neighbours and the neighbour's position (Doersch et al., 2015).

    A 3x3 grid of patch_size patches spaced by ``gap`` pixels (grid step
    patch_size + gap) is placed at a uniformly random position that fits the
    image; the label drawn uniformly from 0..7 selects the neighbour at grid offset
    NEIGHBOUR_OFFSETS[label]. Both patches are then shifted independently by a
    random integer in [-jitter, jitter] per axis, so that the network cannot solve
    the task by continuing edges across the gap. The paper uses 96 px patches with
    48 px gaps and up to 7 px jitter on ImageNet; the defaults (8, 2, 1) fit CIFAR:
    3*8 + 2*2 + 2*1 = 30 <= 32.

    Args:
        images: x, float (N, C, H, W).
        patch_size: side of each patch in pixels.
        gap: pixels between neighbouring patches of the grid.
        jitter: largest random shift per axis of each patch.
        colour_dropping: apply ``drop_colours`` to every patch (off by default).
        generator: random source of positions, labels, jitter and colour dropping.

    Returns:
        centre_patches (N, C, p, p), neighbour_patches (N, C, p, p) and labels (N,) long in 0..7.
    """
    _check_images(images)
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}; pass a size such as 8")
    _check_non_negative_int(gap, "gap")
    _check_non_negative_int(jitter, "jitter")
    n, _, height, width = images.shape
    step = patch_size + gap
    needed = 3 * patch_size + 2 * gap + 2 * jitter
    if needed > min(height, width):
        raise ValueError(
            f"the 3x3 patch grid needs 3*patch_size + 2*gap + 2*jitter = {needed} px but the images are "
            f"{height}x{width}; lower patch_size, gap or jitter (CIFAR: 8, 2, 1)"
        )
    device = images.device
    grid_top = _random_ints(jitter, height - needed + jitter, (n,), generator, device)
    grid_left = _random_ints(jitter, width - needed + jitter, (n,), generator, device)
    labels = _random_ints(0, 7, (n,), generator, device)
    offsets = NEIGHBOUR_OFFSETS.to(device)[labels]
    shifts = _random_ints(-jitter, jitter, (4, n), generator, device)
    centre_top = grid_top + step + shifts[0]
    centre_left = grid_left + step + shifts[1]
    neighbour_top = grid_top + (1 + offsets[:, 0]) * step + shifts[2]
    neighbour_left = grid_left + (1 + offsets[:, 1]) * step + shifts[3]
    image_index = torch.arange(n, device=device)
    centre = _crop_square_patches(images, image_index, centre_top, centre_left, patch_size)
    neighbour = _crop_square_patches(images, image_index, neighbour_top, neighbour_left, patch_size)
    if colour_dropping:
        centre = drop_colours(centre, generator=generator)
        neighbour = drop_colours(neighbour, generator=generator)
    return centre, neighbour, labels


# ---------------------------------------------------------------------------
# Image Colorization (Zhang et al. 2016): predict the ab channels of CIE Lab
# from L as a distribution over Q quantised ab bins.
# ---------------------------------------------------------------------------

SRGB_TO_XYZ_D65 = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)
"""Linear sRGB -> CIE XYZ matrix for the D65 white (IEC 61966-2-1, as tabulated by B. Lindbloom)."""

XYZ_TO_SRGB_D65 = torch.linalg.inv(SRGB_TO_XYZ_D65)
"""Its exact inverse, so that lab_to_rgb(rgb_to_lab(x)) == x up to rounding."""

D65_WHITE = (0.95047, 1.0, 1.08883)
"""Reference white (X_n, Y_n, Z_n) of D65 with Y_n = 1."""

_LAB_DELTA = 6 / 29  # f(t) is linear below t = delta^3 = epsilon
_LAB_EPSILON = _LAB_DELTA**3  # 216/24389
_LAB_KAPPA = (29 / 3) ** 3  # 24389/27: L = kappa * Y/Y_n below epsilon
_SRGB_THRESHOLD = 0.04045  # companded value where sRGB switches from linear to gamma
_SRGB_LINEAR_THRESHOLD = _SRGB_THRESHOLD / 12.92


def _check_colour_images(images: torch.Tensor, function: str) -> None:
    if images.ndim < 3 or images.shape[-3] != 3:
        channels = images.shape[-3] if images.ndim >= 3 else "no channel dimension"
        raise ValueError(
            f"{function} needs RGB images with 3 channels, got {channels}; "
            "convert grayscale with x.expand(-1, 3, -1, -1)"
        )
    if not images.is_floating_point():
        raise ValueError(f"{function} needs float images in [0, 1], got dtype {images.dtype}; use x.float() / 255")


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """f(t) = t^(1/3) above epsilon, (kappa t + 16) / 116 below (continuous at epsilon)."""
    return torch.where(t > _LAB_EPSILON, t.clamp_min(_LAB_EPSILON).pow(1 / 3), (_LAB_KAPPA * t + 16) / 116)


def _lab_f_inverse(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u > _LAB_DELTA, u.pow(3), (116 * u - 16) / _LAB_KAPPA)


def _matrix(matrix: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix.to(images.device, images.dtype), images)


def _white(images: torch.Tensor) -> torch.Tensor:
    return torch.tensor(D65_WHITE, device=images.device, dtype=images.dtype).reshape(3, 1, 1)


def rgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """Exact sRGB (D65) -> CIE L*a*b* conversion, the colour space of Zhang et al. (2016).

    1. sRGB companding undone: c_lin = c / 12.92 for c <= 0.04045, else ((c + 0.055) / 1.055)^2.4.
    2. XYZ = M c_lin with M = SRGB_TO_XYZ_D65.
    3. L = 116 f(Y/Y_n) - 16, a = 500 (f(X/X_n) - f(Y/Y_n)), b = 200 (f(Y/Y_n) - f(Z/Z_n)),
       with white (X_n, Y_n, Z_n) = (0.95047, 1.0, 1.08883), f(t) = t^(1/3) for
       t > epsilon = (6/29)^3 and f(t) = (kappa t + 16) / 116 with kappa = (29/3)^3 otherwise.

    Args:
        images: x, float (..., 3, H, W) sRGB values in [0, 1].

    Returns:
        lab (..., 3, H, W): L in [0, 100], a and b roughly in [-128, 128].
    """
    _check_colour_images(images, "rgb_to_lab")
    linear = torch.where(
        images <= _SRGB_THRESHOLD,
        images / 12.92,
        ((images.clamp_min(_SRGB_THRESHOLD) + 0.055) / 1.055).pow(2.4),
    )
    xyz = _matrix(SRGB_TO_XYZ_D65, linear) / _white(images)
    fx, fy, fz = _lab_f(xyz).unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* -> sRGB (D65), the exact inverse of ``rgb_to_lab``.

    Lab colours outside the sRGB gamut come back with values outside [0, 1]
    (the companding is extended as an odd function); clamp them yourself for display.

    Args:
        lab: float (..., 3, H, W) with channels L, a, b.

    Returns:
        images (..., 3, H, W) in sRGB.
    """
    _check_colour_images(lab, "lab_to_rgb")
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16) / 116
    f_xyz = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = _lab_f_inverse(f_xyz) * _white(lab)
    linear = _matrix(XYZ_TO_SRGB_D65, xyz)
    magnitude = linear.abs()
    companded = torch.where(
        magnitude <= _SRGB_LINEAR_THRESHOLD,
        12.92 * magnitude,
        1.055 * magnitude.clamp_min(_SRGB_LINEAR_THRESHOLD).pow(1 / 2.4) - 0.055,
    )
    return torch.sign(linear) * companded


def ab_bin_index(ab: torch.Tensor, step: float = 10.0) -> torch.Tensor:
    """Grid cell of ab values: floor(ab / step + 1/2), so bin q covers [c_q - step/2, c_q + step/2) per axis.

    Args:
        ab: float (..., 2) or any shape of a and b values.
        step: side of the square ab bins (10 in Zhang et al., 2016).
    """
    return torch.floor(ab / step + 0.5).long()


def _srgb_cube_surface(samples_per_edge: int) -> torch.Tensor:
    """Colours (3, M, 1) on the surface of the sRGB cube.

    A grid of samples_per_edge^2 colours on each of the six faces, plus
    samples_per_edge^2 colours along each of the twelve edges, where most of the
    outline of the gamut's projection onto the ab plane lies.
    """
    values = torch.linspace(0, 1, samples_per_edge, dtype=torch.float64)
    first, second = (v.flatten() for v in torch.meshgrid(values, values, indexing="ij"))
    along_edge = torch.linspace(0, 1, samples_per_edge**2, dtype=torch.float64)
    pieces = []
    for fixed_channel in range(3):
        for fixed_value in (0.0, 1.0):
            free = [first, second]
            face = [free.pop(0) if c != fixed_channel else torch.full_like(first, fixed_value) for c in range(3)]
            pieces.append(torch.stack(face))
    for free_channel in range(3):
        for corner in itertools.product((0.0, 1.0), repeat=2):
            fixed = list(corner)
            edge = [along_edge if c == free_channel else torch.full_like(along_edge, fixed.pop(0)) for c in range(3)]
            pieces.append(torch.stack(edge))
    return torch.cat(pieces, dim=1).unsqueeze(-1)


def ab_bin_centres(
    step: float = 10.0,
    samples_per_edge: int = 128,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Centres of the in-gamut ab bins (Zhang et al., 2016, report Q = 313 for step 10).

    The ab plane is cut into squares of side ``step`` centred on multiples of it;
    a bin is in gamut when some sRGB colour (at any lightness L) falls into it.
    rgb_to_lab maps the sRGB cube one-to-one onto a solid whose boundary is the
    image of the cube's faces, and projecting a solid onto the ab plane gives the
    projection of its boundary; so sampling the surface of the cube is enough: a
    grid of samples_per_edge^2 colours on each face and as many along each edge.
    A bin touched only by a tiny sliver of the gamut can still be missed by coarse
    sampling; the default finds all bins that a sampling of 2049^2 colours per face
    finds (262 for step 10).

    Args:
        step: bin side in ab units.
        samples_per_edge: sRGB samples along each side of a face grid (values linspace(0, 1)).
        device, dtype: of the returned centres.

    Returns:
        centres (Q, 2) with columns (a, b), sorted by a then b.
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}; pass 10 as in the paper")
    if samples_per_edge < 2:
        raise ValueError(f"samples_per_edge must be >= 2, got {samples_per_edge}; pass e.g. 256")
    ab = rgb_to_lab(_srgb_cube_surface(samples_per_edge))[1:].reshape(2, -1).T
    bins = torch.unique(ab_bin_index(ab, step), dim=0)
    return (bins * step).to(device=device, dtype=dtype)


def _check_ab(ab: torch.Tensor, centres: torch.Tensor) -> None:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(
            f"ab must have shape (N, 2, H, W), got {tuple(ab.shape)}; take rgb_to_lab(x)[:, 1:]"
        )
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise ValueError(f"centres must have shape (Q, 2), got {tuple(centres.shape)}; use ab_bin_centres()")


def _ab_distances(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (N*H*W, Q) from every pixel's ab value to every bin centre."""
    pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    return torch.cdist(pixels, centres.to(ab.device, ab.dtype), compute_mode="donot_use_mm_for_euclid_dist")


def hard_encode_ab(ab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest ab bin centre per pixel (the one-hot target, Zhang et al., 2016).

    Args:
        ab: Y, the ab channels (N, 2, H, W).
        centres: bin centres (Q, 2).

    Returns:
        bins (N, H, W) long in 0..Q-1.
    """
    _check_ab(ab, centres)
    n, _, height, width = ab.shape
    return _ab_distances(ab, centres).argmin(dim=1).reshape(n, height, width)


def in_gamut_bins_for(images_lab: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """How many pixels of the given Lab images fall into each ab bin.

    ``(counts > 0).sum()`` is the number of bins a data set actually uses (compare
    with Zhang et al.'s Q = 313 for the whole gamut); ``counts`` is the input of
    ``rebalancing_weights``.

    Args:
        images_lab: Lab images (N, 3, H, W), e.g. rgb_to_lab(x).
        centres: bin centres (Q, 2).

    Returns:
        counts (Q,) long.
    """
    _check_colour_images(images_lab, "in_gamut_bins_for")
    bins = hard_encode_ab(images_lab[:, 1:], centres)
    return torch.bincount(bins.flatten(), minlength=centres.shape[0])


def encode_ab(ab: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0, k: int = 5) -> torch.Tensor:
    """Soft-encoded colour targets Z of Zhang et al. (2016).

    Each pixel's ab value spreads over its k nearest bin centres with weights
    proportional to exp(-d^2 / (2 sigma^2)) (d: distance to the centre), summing
    to 1; all other bins get 0. The paper uses k = 5, sigma = 5.

    Args:
        ab: Y, the ab channels (N, 2, H, W).
        centres: bin centres (Q, 2).
        sigma: Gaussian width in ab units.
        k: number of nearest bins that share each pixel.

    Returns:
        Z (N, Q, H, W), a distribution over the Q bins per pixel. It holds N*Q*H*W
        values: encode targets at a reduced resolution for large batches.
    """
    _check_ab(ab, centres)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}; pass 5 as in the paper")
    n_bins = centres.shape[0]
    if not 1 <= k <= n_bins:
        raise ValueError(f"k must lie in [1, Q={n_bins}], got {k}; pass 5 as in the paper")
    n, _, height, width = ab.shape
    nearest_distances, nearest_bins = _ab_distances(ab, centres).topk(k, dim=1, largest=False)
    weights = torch.softmax(-nearest_distances.square() / (2 * sigma**2), dim=1)
    targets = torch.zeros(n * height * width, n_bins, device=ab.device, dtype=ab.dtype)
    targets.scatter_(1, nearest_bins, weights)
    return targets.reshape(n, height, width, n_bins).permute(0, 3, 1, 2)


def empirical_ab_distribution(
    bin_counts: torch.Tensor, centres: torch.Tensor | None = None, sigma: float | None = None
) -> torch.Tensor:
    """p~: the empirical distribution of ab bins, optionally smoothed in the ab plane (Zhang et al., 2016).

    Without ``sigma`` it is counts / sum(counts). With ``sigma`` (the paper: 5) the
    distribution is convolved with a Gaussian over the bin centres,
    p~_q ∝ sum_q' p_q' exp(-|c_q - c_q'|^2 / (2 sigma^2)), and renormalised.

    Args:
        bin_counts: pixel count per bin (Q,), e.g. from in_gamut_bins_for.
        centres: bin centres (Q, 2); needed only for smoothing.
        sigma: Gaussian width in ab units, or None for no smoothing.

    Returns:
        p~ (Q,) float, summing to 1.
    """
    if bin_counts.ndim != 1 or (bin_counts < 0).any() or bin_counts.sum() <= 0:
        raise ValueError(
            "bin_counts must be a 1-D tensor of non-negative counts with a positive total, got "
            f"shape {tuple(bin_counts.shape)}; count pixels with in_gamut_bins_for"
        )
    counts = bin_counts if bin_counts.is_floating_point() else bin_counts.double()
    probabilities = counts / counts.sum()
    if sigma is None:
        return probabilities
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 or None, got {sigma}; pass 5 as in the paper, or None to skip smoothing")
    if centres is None or centres.shape != (bin_counts.shape[0], 2):
        raise ValueError(
            f"smoothing with sigma needs the bin centres of shape (Q, 2) = ({bin_counts.shape[0]}, 2); "
            "pass centres=ab_bin_centres() or sigma=None"
        )
    centres = centres.to(probabilities.device, probabilities.dtype)
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2 * sigma**2))
    smoothed = kernel @ probabilities
    return smoothed / smoothed.sum()


def rebalancing_weights(
    bin_counts: torch.Tensor, lam: float = 0.5, centres: torch.Tensor | None = None, sigma: float | None = None
) -> torch.Tensor:
    """Class-rebalancing weights w of Zhang et al. (2016) for rare colours.

    w ∝ ((1 - lambda) p~ + lambda / Q)^-1, normalised so that E_p~[w] = sum_q p~_q w_q = 1,
    with p~ from ``empirical_ab_distribution`` (the paper smooths with sigma = 5 and
    uses lambda = 0.5). lambda = 1 gives uniform weights; lambda = 0 fully inverts p~.

    Args:
        bin_counts: pixel count per bin (Q,).
        lam: lambda in [0, 1], the mix with the uniform distribution.
        centres, sigma: optional smoothing of p~, see empirical_ab_distribution.

    Returns:
        w (Q,), in the dtype of floating bin_counts, float64 for integer counts.
    """
    if not 0 <= lam <= 1:
        raise ValueError(f"lam (lambda) must lie in [0, 1], got {lam}; pass 0.5 as in the paper")
    probabilities = empirical_ab_distribution(bin_counts, centres, sigma)
    mixed = (1 - lam) * probabilities + lam / probabilities.shape[0]
    if (mixed == 0).any():
        raise ValueError("some bins have p~ = 0 and lam = 0, so their weight is infinite; pass lam > 0 such as 0.5")
    weights = 1 / mixed
    return weights / (probabilities * weights).sum()


def annealed_mean(probs: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Decode predicted bin distributions Z into ab values by the annealed mean (Zhang et al., 2016).

    f_T(z)_q = exp(log z_q / T) / sum_q' exp(log z_q' / T) sharpens the distribution
    (T = 1: the mean, T -> 0: the mode); the ab value is then sum_q f_T(z)_q c_q.
    The paper picks T = 0.38.

    Args:
        probs: Z, non-negative (N, Q, H, W); each pixel is renormalised by f_T.
        centres: bin centres c_q (Q, 2).
        temperature: T > 0.

    Returns:
        ab (N, 2, H, W).
    """
    if probs.ndim != 4 or centres.ndim != 2 or probs.shape[1] != centres.shape[0] or centres.shape[1] != 2:
        raise ValueError(
            f"probs must be (N, Q, H, W) and centres (Q, 2) with the same Q, got {tuple(probs.shape)} and "
            f"{tuple(centres.shape)}; pass the softmax over the Q bins of ab_bin_centres()"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}; pass 0.38 as in the paper")
    if (probs < 0).any():
        raise ValueError("probs must be non-negative; pass softmax(logits, dim=1)")
    sharpened = torch.softmax(torch.log(probs) / temperature, dim=1)
    return torch.einsum("nqhw,qc->nchw", sharpened, centres.to(probs.device, probs.dtype))


# ---------------------------------------------------------------------------
# Learning to Count (Noroozi et al. 2017):
# L = ||phi(D∘x) - sum_i phi(T_i∘x)||^2 + max(0, c - ||phi(D∘y) - sum_i phi(T_i∘x)||^2).
# ---------------------------------------------------------------------------


def count_views(images: torch.Tensor, other_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The views D∘x, T_i∘x and D∘y of the counting loss (Noroozi et al., 2017).

    D halves the resolution by averaging each 2x2 pixel block (area
    interpolation; for an exact factor 2 this equals bilinear interpolation with
    align_corners=False), so that D∘x has the size of one tile. T_1..T_4 are the
    top-left, top-right, bottom-left and bottom-right quarters of x. y is a
    different image, the contrastive term of the loss (``sslbook.losses.counting_loss``).

    Args:
        images: x, float (N, C, H, W) with even H and W.
        other_images: y, float (N, C, H, W), e.g. x rolled by one along the batch.

    Returns:
        downsampled_x (N, C, H/2, W/2), tiles_x (N, 4, C, H/2, W/2), downsampled_y (N, C, H/2, W/2).
    """
    _check_images(images)
    _check_images(other_images, "other_images")
    if images.shape != other_images.shape:
        raise ValueError(
            f"images and other_images must have the same shape, got {tuple(images.shape)} and "
            f"{tuple(other_images.shape)}; pass y = x.roll(1, dims=0) for example"
        )
    n, channels, height, width = images.shape
    if height % 2 or width % 2:
        raise ValueError(
            f"count_views needs even H and W to cut 2x2 tiles, got {height}x{width}; crop one row/column first"
        )
    half_h, half_w = height // 2, width // 2
    tiles = images.reshape(n, channels, 2, half_h, 2, half_w).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n, 4, channels, half_h, half_w)
    return F.avg_pool2d(images, 2), tiles, F.avg_pool2d(other_images, 2)


# ---------------------------------------------------------------------------
# Exemplar-CNN (Dosovitskiy et al. 2014): seed patches from high-gradient
# regions; each becomes a surrogate class once augmented (elsewhere).
# ---------------------------------------------------------------------------

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 grayscale
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the grayscale image, sqrt(G_x^2 + G_y^2).

    Grayscale is the BT.601 luma 0.299 R + 0.587 G + 0.114 B; borders are padded
    by replication, so a flat image has zero gradient everywhere.

    Args:
        images: x, float (N, 3, H, W).

    Returns:
        magnitude (N, H, W).
    """
    _check_images(images)
    if images.shape[1] != 3:
        raise ValueError(f"gradient_magnitude needs RGB images, got {images.shape[1]} channels; pass (N, 3, H, W)")
    luma = torch.tensor(_LUMA_WEIGHTS, device=images.device, dtype=images.dtype)
    gray = torch.einsum("c,nchw->nhw", luma, images).unsqueeze(1)
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    sobel_x = _SOBEL_X.to(images.device, images.dtype)
    kernels = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1)
    gradients = F.conv2d(padded, kernels)
    return gradients.square().sum(1).sqrt()


def exemplar_patch_weights(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sampling weight of every patch position: the summed squared gradient magnitude inside the patch.

    Dosovitskiy et al. (2014) sample patches with probability proportional to the
    mean squared gradient magnitude within the patch; the sum is proportional to it.

    Args:
        images: x, float (N, 3, H, W).
        patch_size: patch side p.

    Returns:
        weights (N, H - p + 1, W - p + 1); entry [n, r, c] belongs to the patch with top-left (r, c).
    """
    _check_images(images)
    height, width = images.shape[-2:]
    if not 1 <= patch_size <= min(height, width):
        raise ValueError(
            f"patch_size must lie in [1, {min(height, width)}] for {height}x{width} images, got {patch_size}; "
            "pass e.g. 24 for CIFAR"
        )
    energy = gradient_magnitude(images).square().unsqueeze(1)
    return F.avg_pool2d(energy, patch_size, stride=1).squeeze(1) * patch_size**2


def sample_exemplar_patches(
    images: torch.Tensor, n_patches: int, patch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seed patches of Exemplar-CNN, drawn where the gradient is large (Dosovitskiy et al., 2014).

    Every patch position of every image is a candidate with weight from
    ``exemplar_patch_weights`` (summed squared Sobel magnitude inside the patch).
    n_patches distinct candidates are drawn without replacement, each draw with
    probability proportional to its weight among those left (Gumbel top-k), so a
    patch without any gradient is never drawn. Each patch later becomes one
    surrogate class by random augmentation (elsewhere). The paper cuts 32 px patches
    from 96 px STL images; for CIFAR 32x32 images we cut 24 px patches (about 3/4
    of the image) and let the augmentation resize them back to 32 px.

    Args:
        images: seed images x, float (N, 3, H, W).
        n_patches: number of patches (surrogate classes).
        patch_size: patch side p in pixels.
        generator: random source of the draw.

    Returns:
        patches (n_patches, 3, p, p), source_index (n_patches,) long (the image of
        each patch) and positions (n_patches, 2) long (top, left) of each patch.
    """
    weights = exemplar_patch_weights(images, patch_size)
    n_positions_h, n_positions_w = weights.shape[-2:]
    flat_weights = weights.flatten()
    n_candidates = int((flat_weights > 0).sum())
    if not 1 <= n_patches <= n_candidates:
        raise ValueError(
            f"n_patches must lie in [1, {n_candidates}] (patch positions with non-zero gradient), got {n_patches}; "
            "pass fewer patches or more (textured) images"
        )
    draw_device = generator.device if generator is not None else images.device
    uniform = torch.rand(flat_weights.shape, generator=generator, device=draw_device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.to(images.device).clamp_min(torch.finfo(torch.float64).tiny)))
    keys = flat_weights.double().log() + gumbel
    chosen = keys.topk(n_patches).indices
    per_image = n_positions_h * n_positions_w
    source_index = chosen // per_image
    top = (chosen % per_image) // n_positions_w
    left = chosen % n_positions_w
    patches = _crop_square_patches(images, source_index, top, left, patch_size)
    return patches, source_index, torch.stack([top, left], dim=1)
