"""Tests of the pretext-task label builders against explicit loops, slicing and published values."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sslbook import pretext

# ---------------------------------------------------------------------------
# Helpers: independent reference computations.
# ---------------------------------------------------------------------------


def coordinate_images(n: int, height: int, width: int) -> torch.Tensor:
    """Images whose channel 0 holds the row index, channel 1 the column index, channel 2 the image index."""
    rows = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    return torch.stack(
        [torch.stack([rows, cols, torch.full((height, width), float(i), dtype=torch.float64)]) for i in range(n)]
    )


def top_left_of(patch: torch.Tensor) -> tuple[int, int]:
    return int(patch[0, 0, 0]), int(patch[1, 0, 0])


def hamming(p: tuple[int, ...], q: tuple[int, ...]) -> int:
    return sum(a != b for a, b in zip(p, q))


def scalar_srgb_to_lab(r: float, g: float, b: float) -> tuple[float, float, float]:
    """Textbook sRGB (D65) -> CIE Lab for one colour, in plain Python."""

    def linearise(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rl, gl, bl = linearise(r), linearise(g), linearise(b)
    x = 0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl
    y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
    z = 0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl

    def f(t: float) -> float:
        epsilon, kappa = 216 / 24389, 24389 / 27
        return t ** (1 / 3) if t > epsilon else (kappa * t + 16) / 116

    fx, fy, fz = f(x / 0.95047), f(y / 1.0), f(z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


# ---------------------------------------------------------------------------
# Rotation.
# ---------------------------------------------------------------------------


def test_rotate_batch_matches_explicit_rot90_and_rotates_back():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 5, 5)
    rotated, labels = pretext.rotate_batch(images)
    assert rotated.shape == (12, 3, 5, 5) and labels.shape == (12,)
    for k in range(4):
        for n in range(3):
            i = k * 3 + n
            assert labels[i] == k
            assert torch.equal(rotated[i], torch.rot90(images[n], k, dims=(1, 2)))
            assert torch.equal(torch.rot90(rotated[i], -int(labels[i]), dims=(1, 2)), images[n])


def test_rotate_batch_label_one_is_counter_clockwise():
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(1, 3, 2, 2)
    rotated, labels = pretext.rotate_batch(image)
    # 90 degrees counter-clockwise: the right column moves to the top row.
    assert labels[1] == 1
    assert torch.equal(rotated[1, 0], torch.tensor([[2.0, 4.0], [1.0, 3.0]]))


def test_rotate_batch_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        pretext.rotate_batch(torch.rand(2, 3, 4, 5))


# ---------------------------------------------------------------------------
# Jigsaw: permutation set.
# ---------------------------------------------------------------------------


def loop_greedy(n_tiles: int, n_permutations: int, first: tuple[int, ...], criterion: str) -> list[tuple[int, ...]]:
    candidates = list(itertools.permutations(range(n_tiles)))
    chosen = [first]
    while len(chosen) < n_permutations:
        best, best_score = None, -1
        for candidate in candidates:
            if candidate in chosen:
                continue
            distances = [hamming(candidate, c) for c in chosen]
            score = min(distances) if criterion == "min" else sum(distances)
            if score > best_score:
                best, best_score = candidate, score
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("criterion", ["min", "mean"])
def test_permutation_set_equals_loop_greedy(criterion):
    permutations = pretext.make_permutation_set(10, n_tiles=4, seed=3, criterion=criterion)
    rows = [tuple(row) for row in permutations.tolist()]
    assert rows == loop_greedy(4, 10, rows[0], criterion)


def test_permutation_set_default_is_valid_and_reports_min_distance():
    permutations = pretext.make_permutation_set(100, n_tiles=9, seed=0)
    assert permutations.shape == (100, 9) and permutations.dtype == torch.long
    rows = [tuple(row) for row in permutations.tolist()]
    assert len(set(rows)) == 100
    assert all(sorted(row) == list(range(9)) for row in rows)
    brute_force_min = min(hamming(p, q) for p, q in itertools.combinations(rows, 2))
    assert pretext.min_hamming_distance(permutations) == brute_force_min
    assert brute_force_min >= 6


@pytest.mark.parametrize("n_tiles, n_permutations", [(3, 2), (3, 3), (4, 4), (4, 2)])
def test_greedy_min_distance_reaches_brute_force_optimum_on_small_cases(n_tiles, n_permutations):
    everything = list(itertools.permutations(range(n_tiles)))
    optimum = max(
        min(hamming(p, q) for p, q in itertools.combinations(subset, 2))
        for subset in itertools.combinations(everything, n_permutations)
    )
    permutations = pretext.make_permutation_set(n_permutations, n_tiles=n_tiles, seed=1)
    assert pretext.min_hamming_distance(permutations) == optimum


def test_permutation_set_is_reproducible_and_depends_on_seed():
    a = pretext.make_permutation_set(20, n_tiles=5, seed=7)
    assert torch.equal(a, pretext.make_permutation_set(20, n_tiles=5, seed=7))
    assert not torch.equal(a, pretext.make_permutation_set(20, n_tiles=5, seed=8))


def test_min_hamming_is_met_or_names_the_achievable_size():
    permutations = pretext.make_permutation_set(4, n_tiles=4, min_hamming=4)
    assert pretext.min_hamming_distance(permutations) == 4
    # At most 4 permutations of 4 tiles differ pairwise in all 4 positions (rows of a Latin square).
    with pytest.raises(ValueError, match=r"only 4 permutations.*lower min_hamming or n_permutations"):
        pretext.make_permutation_set(5, n_tiles=4, min_hamming=4)


def test_permutation_set_bad_sizes():
    with pytest.raises(ValueError, match=r"3! = 6"):
        pretext.make_permutation_set(7, n_tiles=3)
    with pytest.raises(ValueError, match="n_tiles must lie in"):
        pretext.make_permutation_set(10, n_tiles=10)
    with pytest.raises(ValueError, match="criterion"):
        pretext.make_permutation_set(10, n_tiles=4, criterion="max")


# ---------------------------------------------------------------------------
# Jigsaw: tiles.
# ---------------------------------------------------------------------------


def test_jigsaw_tiles_without_jitter_match_direct_slicing():
    torch.manual_seed(0)
    images = torch.rand(5, 3, 32, 32)
    permutations = pretext.make_permutation_set(6, n_tiles=9)
    generator = torch.Generator().manual_seed(0)
    tiles, labels = pretext.jigsaw_tiles(images, permutations, grid=3, jitter=0, generator=generator)
    assert tiles.shape == (5, 9, 3, 8, 8) and labels.shape == (5,)
    # 32 px, grid 3: cells of 10 px starting at row/col 1; 8 px tiles centred with 1 px slack.
    expected_top_left = {i: (1 + (i // 3) * 10 + 1, 1 + (i % 3) * 10 + 1) for i in range(9)}
    ordered = pretext.unshuffle(tiles, permutations, labels)
    for n in range(5):
        permutation = permutations[labels[n]].tolist()
        for j in range(9):
            top, left = expected_top_left[permutation[j]]
            assert torch.equal(tiles[n, j], images[n, :, top : top + 8, left : left + 8])
        for i in range(9):
            top, left = expected_top_left[i]
            assert torch.equal(ordered[n, i], images[n, :, top : top + 8, left : left + 8])


def test_jigsaw_labels_decode_to_the_permutation_and_jitter_stays_in_the_cell():
    images = coordinate_images(60, 32, 32)
    permutations = pretext.make_permutation_set(4, n_tiles=9)
    generator = torch.Generator().manual_seed(1)
    tiles, labels = pretext.jigsaw_tiles(images, permutations, generator=generator)
    assert set(labels.tolist()) == {0, 1, 2, 3}
    shifts = set()
    for n in range(60):
        for j in range(9):
            position = int(permutations[labels[n], j])
            top, left = top_left_of(tiles[n, j])
            nominal_top, nominal_left = 2 + (position // 3) * 10, 2 + (position % 3) * 10
            assert abs(top - nominal_top) <= 1 and abs(left - nominal_left) <= 1
            shifts.update({top - nominal_top, left - nominal_left})
            assert torch.equal(tiles[n, j], images[n, :, top : top + 8, left : left + 8])
    assert shifts == {-1, 0, 1}


def test_jigsaw_tiles_are_reproducible_with_a_generator():
    images = torch.rand(4, 3, 32, 32)
    permutations = pretext.make_permutation_set(10)
    first = pretext.jigsaw_tiles(images, permutations, generator=torch.Generator().manual_seed(5))
    second = pretext.jigsaw_tiles(images, permutations, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_jigsaw_bad_inputs():
    images = torch.rand(2, 3, 32, 32)
    permutations = pretext.make_permutation_set(4, n_tiles=9)
    with pytest.raises(ValueError, match=r"tile_size.*cell = .* = 10 px.*grid\*tile_size = 33"):
        pretext.jigsaw_tiles(images, permutations, tile_size=11)
    with pytest.raises(ValueError, match="smaller grid"):
        pretext.jigsaw_tiles(torch.rand(2, 3, 2, 2), permutations, grid=3)
    with pytest.raises(ValueError, match="jitter 2 moves a tile"):
        pretext.jigsaw_tiles(images, permutations, tile_size=8, jitter=2)
    with pytest.raises(ValueError, match=r"\(P, 4\)"):
        pretext.jigsaw_tiles(images, permutations, grid=2)
    with pytest.raises(ValueError, match="permutation of 0..8"):
        pretext.jigsaw_tiles(images, torch.zeros(3, 9, dtype=torch.long))


# ---------------------------------------------------------------------------
# Context prediction.
# ---------------------------------------------------------------------------


def test_neighbour_offsets_are_row_major_around_the_centre():
    expected = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    assert [tuple(row) for row in pretext.NEIGHBOUR_OFFSETS.tolist()] == expected


def test_context_pairs_without_jitter_sit_exactly_at_the_label_offset():
    images = coordinate_images(80, 32, 32)
    generator = torch.Generator().manual_seed(0)
    centre, neighbour, labels = pretext.context_pairs(images, patch_size=8, gap=2, jitter=0, generator=generator)
    assert centre.shape == neighbour.shape == (80, 3, 8, 8)
    assert set(labels.tolist()) == set(range(8))
    for n in range(80):
        drow, dcol = pretext.NEIGHBOUR_OFFSETS[labels[n]].tolist()
        centre_top, centre_left = top_left_of(centre[n])
        top, left = top_left_of(neighbour[n])
        assert (top - centre_top, left - centre_left) == (drow * 10, dcol * 10)
        assert torch.equal(centre[n], images[n, :, centre_top : centre_top + 8, centre_left : centre_left + 8])
        assert torch.equal(neighbour[n], images[n, :, top : top + 8, left : left + 8])


def test_context_pairs_jitter_stays_within_bounds():
    images = coordinate_images(100, 32, 32)
    generator = torch.Generator().manual_seed(1)
    centre, neighbour, labels = pretext.context_pairs(images, patch_size=8, gap=2, jitter=1, generator=generator)
    deviations = set()
    for n in range(100):
        drow, dcol = pretext.NEIGHBOUR_OFFSETS[labels[n]].tolist()
        centre_top, centre_left = top_left_of(centre[n])
        top, left = top_left_of(neighbour[n])
        deviation = (top - centre_top - drow * 10, left - centre_left - dcol * 10)
        assert max(abs(d) for d in deviation) <= 2
        deviations.update(deviation)
        assert 0 <= min(top, left, centre_top, centre_left) and max(top, left, centre_top, centre_left) + 8 <= 32
        assert torch.equal(neighbour[n], images[n, :, top : top + 8, left : left + 8])
    assert deviations == {-2, -1, 0, 1, 2}


def test_colour_dropping_keeps_exactly_one_channel_per_patch():
    torch.manual_seed(0)
    images = torch.rand(40, 3, 32, 32)
    plain = pretext.context_pairs(images, generator=torch.Generator().manual_seed(2))
    dropped = pretext.context_pairs(images, colour_dropping=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(plain[2], dropped[2])
    for original, new in [(plain[0], dropped[0]), (plain[1], dropped[1])]:
        kept = [(new[m, c] == original[m, c]).all().item() for m in range(40) for c in range(3)]
        kept = torch.tensor(kept).reshape(40, 3)
        assert (kept.sum(1) == 1).all()
        assert set(kept.float().argmax(1).tolist()) == {0, 1, 2}
        for m in range(40):
            kept_channel = original[m, kept[m]].squeeze(0)
            noise = new[m, ~kept[m]]
            assert torch.allclose(noise.mean(), kept_channel.mean(), atol=0.01)
            assert noise.std() < 0.05 * kept_channel.std()


def test_context_pairs_rejects_a_grid_larger_than_the_image():
    with pytest.raises(ValueError, match=r"needs 3\*patch_size \+ 2\*gap \+ 2\*jitter = 33 px"):
        pretext.context_pairs(torch.rand(2, 3, 32, 32), patch_size=9, gap=2, jitter=1)


# ---------------------------------------------------------------------------
# Colorization: sRGB <-> Lab.
# ---------------------------------------------------------------------------

# Published sRGB (D65) -> CIE Lab values (e.g. B. Lindbloom's calculator).
REFERENCE_LAB = [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.2408, 80.0925, 67.2032)),
    ((0.0, 1.0, 0.0), (87.7347, -86.1827, 83.1793)),
    ((0.0, 0.0, 1.0), (32.2970, 79.1875, -107.8602)),
]


def colours_as_images(colours: list[tuple[float, float, float]], dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(colours, dtype=dtype).T.reshape(1, 3, len(colours), 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_published_values(dtype):
    lab = pretext.rgb_to_lab(colours_as_images([rgb for rgb, _ in REFERENCE_LAB], dtype))
    expected = torch.tensor([lab for _, lab in REFERENCE_LAB], dtype=dtype).T.reshape(1, 3, -1, 1)
    assert torch.allclose(lab, expected, atol=0.01)


def test_rgb_to_lab_matches_a_scalar_implementation():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    images[0, :, 0, 0] = torch.tensor([0.01, 0.02, 0.03])  # the linear segments of companding and f
    lab = pretext.rgb_to_lab(images)
    for n, row, col in itertools.product(range(2), range(4), range(5)):
        expected = scalar_srgb_to_lab(*images[n, :, row, col].tolist())
        assert lab[n, :, row, col].tolist() == pytest.approx(expected, abs=1e-9)


def test_lab_round_trip_in_float64():
    torch.manual_seed(0)
    images = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    images[0, :, 0, :3] = torch.tensor([[0.0, 0.001, 1.0]] * 3)
    lab = pretext.rgb_to_lab(images)
    assert (pretext.lab_to_rgb(lab) - images).abs().max() < 1e-5
    assert (pretext.rgb_to_lab(pretext.lab_to_rgb(lab)) - lab).abs().max() < 1e-5


def test_lab_rejects_non_rgb_images():
    message = r"rgb_to_lab needs RGB images with 3 channels, got 1; convert grayscale with x.expand\(-1, 3, -1, -1\)"
    with pytest.raises(ValueError, match=message):
        pretext.rgb_to_lab(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match="lab_to_rgb needs"):
        pretext.lab_to_rgb(torch.rand(2, 4, 4, 4))


# ---------------------------------------------------------------------------
# Colorization: ab bins, encoding, rebalancing, decoding.
# ---------------------------------------------------------------------------


def test_default_gamut_bins_are_plausible_and_cover_the_whole_cube():
    centres = pretext.ab_bin_centres()
    assert centres.shape[1] == 2 and 250 <= centres.shape[0] <= 400
    assert torch.equal(centres, torch.round(centres / 10) * 10)
    assert len({tuple(c) for c in centres.tolist()}) == centres.shape[0]
    # Colours inside the cube add no bin to those found on its surface.
    values = torch.linspace(0, 1, 33, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(values, values, values, indexing="ij")).reshape(3, -1, 1)
    interior_bins = torch.floor(pretext.rgb_to_lab(cube)[1:].reshape(2, -1).T / 10 + 0.5) * 10
    assert {tuple(b) for b in interior_bins.tolist()} <= {tuple(c) for c in centres.tolist()}


def test_gamut_bins_equal_a_brute_force_loop_over_the_cube_surface():
    samples = 5
    grid = [i / (samples - 1) for i in range(samples)]
    surface = [rgb for rgb in itertools.product(grid, repeat=3) if any(c in (0.0, 1.0) for c in rgb)]
    edge_grid = [i / (samples**2 - 1) for i in range(samples**2)]
    edges = [rgb for rgb in itertools.product(edge_grid, repeat=3) if sum(c in (0.0, 1.0) for c in rgb) >= 2]
    expected = set()
    for rgb in surface + edges:
        _, a, b = scalar_srgb_to_lab(*rgb)
        expected.add((10.0 * math.floor(a / 10 + 0.5), 10.0 * math.floor(b / 10 + 0.5)))
    centres = pretext.ab_bin_centres(samples_per_edge=samples, dtype=torch.float64)
    assert {tuple(c) for c in centres.tolist()} == expected


def test_hard_and_soft_encoding_against_loops():
    torch.manual_seed(0)
    centres = pretext.ab_bin_centres(samples_per_edge=16)
    ab = (torch.rand(2, 2, 3, 4) - 0.5) * 120
    hard = pretext.hard_encode_ab(ab, centres)
    soft = pretext.encode_ab(ab, centres, sigma=5.0, k=5)
    assert soft.shape == (2, centres.shape[0], 3, 4)
    for n, row, col in itertools.product(range(2), range(3), range(4)):
        pixel = ab[n, :, row, col]
        distances = [float((pixel - c).norm()) for c in centres]
        order = sorted(range(len(distances)), key=distances.__getitem__)
        assert hard[n, row, col] == order[0]
        raw = {q: math.exp(-distances[q] ** 2 / 50) for q in order[:5]}
        total = sum(raw.values())
        expected = torch.zeros(centres.shape[0])
        for q, value in raw.items():
            expected[q] = value / total
        assert torch.allclose(soft[n, :, row, col], expected, atol=1e-6)
        assert soft[n, :, row, col].argmax() == hard[n, row, col]


def test_in_gamut_bins_for_counts_every_pixel_in_its_nearest_bin():
    torch.manual_seed(0)
    centres = pretext.ab_bin_centres(samples_per_edge=16)
    lab = pretext.rgb_to_lab(torch.rand(3, 3, 4, 4))
    counts = pretext.in_gamut_bins_for(lab, centres)
    expected = torch.zeros(centres.shape[0], dtype=torch.long)
    for n, row, col in itertools.product(range(3), range(4), range(4)):
        distances = ((centres - lab[n, 1:, row, col]) ** 2).sum(1)
        expected[int(distances.argmin())] += 1
    assert torch.equal(counts, expected) and counts.sum() == 48


def test_encoding_bad_inputs():
    centres = pretext.ab_bin_centres(samples_per_edge=8)
    with pytest.raises(ValueError, match=r"ab must have shape \(N, 2, H, W\)"):
        pretext.encode_ab(torch.rand(1, 3, 2, 2), centres)
    with pytest.raises(ValueError, match="k must lie in"):
        pretext.encode_ab(torch.rand(1, 2, 2, 2), centres, k=centres.shape[0] + 1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        pretext.encode_ab(torch.rand(1, 2, 2, 2), centres, sigma=0)


def test_rebalancing_weights_have_unit_expectation_and_the_paper_form():
    counts = torch.tensor([50, 30, 15, 5, 0])
    weights = pretext.rebalancing_weights(counts, lam=0.5)
    p = [c / 100 for c in counts.tolist()]
    raw = [1 / (0.5 * p_q + 0.5 / 5) for p_q in p]
    scale = sum(p_q * w for p_q, w in zip(p, raw))
    assert weights.tolist() == pytest.approx([w / scale for w in raw])
    assert sum(p_q * w for p_q, w in zip(p, weights.tolist())) == pytest.approx(1.0)
    assert torch.allclose(pretext.rebalancing_weights(counts, lam=1.0), torch.ones(5, dtype=torch.float64))


def test_rebalancing_weights_with_smoothing_have_unit_expectation_under_smoothed_distribution():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [30.0, 30.0]])
    counts = torch.tensor([10, 0, 5, 1])
    smoothed = []
    for q in range(4):
        smoothed.append(
            sum(counts[r] / 16 * math.exp(-float((centres[q] - centres[r]).norm()) ** 2 / 50) for r in range(4))
        )
    smoothed = [float(s) / float(sum(smoothed)) for s in smoothed]
    distribution = pretext.empirical_ab_distribution(counts, centres, sigma=5.0)
    assert distribution.tolist() == pytest.approx(smoothed)
    weights = pretext.rebalancing_weights(counts, lam=0.5, centres=centres, sigma=5.0)
    assert sum(p * w for p, w in zip(smoothed, weights.tolist())) == pytest.approx(1.0)


def test_rebalancing_bad_inputs():
    with pytest.raises(ValueError, match="pass lam > 0"):
        pretext.rebalancing_weights(torch.tensor([3, 0, 1]), lam=0.0)
    with pytest.raises(ValueError, match=r"lam \(lambda\) must lie in \[0, 1\]"):
        pretext.rebalancing_weights(torch.tensor([3, 1]), lam=1.5)
    with pytest.raises(ValueError, match="needs the bin centres"):
        pretext.rebalancing_weights(torch.tensor([3, 1]), sigma=5.0)


def test_annealed_mean_interpolates_between_mean_and_mode():
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, -20.0], [40.0, 30.0]], dtype=torch.float64)
    probs = torch.softmax(torch.randn(2, 3, 2, 2, dtype=torch.float64), dim=1)
    mean = pretext.annealed_mean(probs, centres, temperature=1.0)
    mode = pretext.annealed_mean(probs, centres, temperature=1e-3)
    annealed = pretext.annealed_mean(probs, centres, temperature=0.38)
    for n, row, col in itertools.product(range(2), range(2), range(2)):
        z = probs[n, :, row, col].tolist()
        expected_mean = [sum(z[q] * float(centres[q, c]) for q in range(3)) for c in range(2)]
        assert mean[n, :, row, col].tolist() == pytest.approx(expected_mean)
        assert mode[n, :, row, col].tolist() == pytest.approx(centres[max(range(3), key=z.__getitem__)].tolist())
        sharpened = [z_q ** (1 / 0.38) for z_q in z]
        expected = [sum(s * float(centres[q, c]) for q, s in enumerate(sharpened)) / sum(sharpened) for c in range(2)]
        assert annealed[n, :, row, col].tolist() == pytest.approx(expected)


def test_annealed_mean_bad_inputs():
    centres = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        pretext.annealed_mean(torch.rand(1, 3, 2, 2), centres, temperature=0.0)
    with pytest.raises(ValueError, match="same Q"):
        pretext.annealed_mean(torch.rand(1, 4, 2, 2), centres)


# ---------------------------------------------------------------------------
# Learning to count.
# ---------------------------------------------------------------------------


def test_count_views_tiles_reassemble_and_downsampling_averages_blocks():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 6, 8), torch.rand(2, 3, 6, 8)
    downsampled_x, tiles, downsampled_y = pretext.count_views(x, y)
    assert tiles.shape == (2, 4, 3, 3, 4) and downsampled_x.shape == downsampled_y.shape == (2, 3, 3, 4)
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=-1)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=-1)
    assert torch.equal(torch.cat([top, bottom], dim=-2), x)
    for image, result in [(x, downsampled_x), (y, downsampled_y)]:
        for n, c, row, col in itertools.product(range(2), range(3), range(3), range(4)):
            block = image[n, c, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2]
            assert result[n, c, row, col] == pytest.approx(float(block.mean()), abs=1e-6)
    bilinear = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert torch.allclose(downsampled_x, bilinear, atol=1e-6)


def test_count_views_bad_inputs():
    with pytest.raises(ValueError, match="even H and W"):
        pretext.count_views(torch.rand(1, 3, 5, 4), torch.rand(1, 3, 5, 4))
    with pytest.raises(ValueError, match="same shape"):
        pretext.count_views(torch.rand(1, 3, 4, 4), torch.rand(2, 3, 4, 4))


# ---------------------------------------------------------------------------
# Exemplar-CNN.
# ---------------------------------------------------------------------------


def loop_sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    n, _, height, width = images.shape
    gray = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    result = torch.zeros(n, height, width, dtype=images.dtype)

    def at(i, r, c):
        return float(gray[i, min(max(r, 0), height - 1), min(max(c, 0), width - 1)])

    for i, r, c in itertools.product(range(n), range(height), range(width)):
        gx = sum(w * (at(i, r + dr, c + 1) - at(i, r + dr, c - 1)) for dr, w in [(-1, 1), (0, 2), (1, 1)])
        gy = sum(w * (at(i, r + 1, c + dc) - at(i, r - 1, c + dc)) for dc, w in [(-1, 1), (0, 2), (1, 1)])
        result[i, r, c] = math.hypot(gx, gy)
    return result


def test_gradient_magnitude_and_patch_weights_against_loops():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    magnitude = pretext.gradient_magnitude(images)
    expected = loop_sobel_magnitude(images)
    assert torch.allclose(magnitude, expected)
    weights = pretext.exemplar_patch_weights(images, patch_size=3)
    assert weights.shape == (2, 3, 4)
    for n, row, col in itertools.product(range(2), range(3), range(4)):
        energy = expected[n, row : row + 3, col : col + 3].pow(2).sum()
        assert float(weights[n, row, col]) == pytest.approx(float(energy))
    assert (pretext.gradient_magnitude(torch.full((1, 3, 4, 4), 0.3)) == 0).all()


def test_exemplar_patches_are_distinct_slices_from_textured_regions_only():
    torch.manual_seed(0)
    flat_image = torch.full((3, 16, 16), 0.5)
    half_textured = torch.full((3, 16, 16), 0.5)
    half_textured[:, :, 10:] = torch.rand(3, 16, 6)
    images = torch.stack([flat_image, half_textured])
    patches, source, positions = pretext.sample_exemplar_patches(
        images, n_patches=20, patch_size=6, generator=torch.Generator().manual_seed(0)
    )
    assert patches.shape == (20, 3, 6, 6)
    assert (source == 1).all()
    assert len({tuple(p) for p in positions.tolist()}) == 20
    gradient = loop_sobel_magnitude(images.double())
    for m in range(20):
        top, left = positions[m].tolist()
        assert 0 <= top <= 10 and 0 <= left <= 10
        assert torch.equal(patches[m], images[source[m], :, top : top + 6, left : left + 6])
        assert gradient[source[m], top : top + 6, left : left + 6].max() > 0


def test_exemplar_draw_probability_is_proportional_to_gradient_energy():
    # Two images of patch size: one candidate each, with energies in ratio 1 : 3.
    images = torch.zeros(2, 3, 4, 4)
    images[0, :, :, 2:] = 1.0
    images[1, :, :, 2:] = math.sqrt(3.0)
    weights = pretext.exemplar_patch_weights(images, patch_size=4).flatten()
    assert float(weights[1] / weights[0]) == pytest.approx(3.0)
    generator = torch.Generator().manual_seed(0)
    draws = [int(pretext.sample_exemplar_patches(images, 1, 4, generator)[1]) for _ in range(800)]
    frequency = sum(draws) / 800
    assert abs(frequency - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 800)


def test_exemplar_bad_inputs():
    with pytest.raises(ValueError, match=r"n_patches must lie in \[1, 0\]"):
        pretext.sample_exemplar_patches(torch.full((2, 3, 8, 8), 0.5), n_patches=1, patch_size=4)
    with pytest.raises(ValueError, match="patch_size must lie in"):
        pretext.sample_exemplar_patches(torch.rand(2, 3, 8, 8), n_patches=1, patch_size=9)
