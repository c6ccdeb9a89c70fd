"""Tests of the Jigsaw Puzzle method (Noroozi & Favaro 2016): puzzle labels, the context-free network, layout."""

import itertools

import pytest
import torch

from sslbook.data import ImageData
from sslbook.methods.jigsaw import (JigsawPuzzle, assemble_tiles, grayscale_tiles, jigsaw_tiles, make_permutation_set,
                                    min_hamming_distance, standardise_tiles, unshuffle)
from sslbook.networks import SmallCNN
from sslbook.runs import describe_run
from sslbook.train import TrainConfig

from one_step import random_uint8_images, train_one_step


def top_left_of(patch: torch.Tensor) -> tuple[int, int]:
    return int(patch[0, 0, 0]), int(patch[1, 0, 0])


def hamming(p: tuple[int, ...], q: tuple[int, ...]) -> int:
    return sum(a != b for a, b in zip(p, q))


def coordinate_images(n: int, size: int) -> torch.Tensor:
    """Channel 0: row index, channel 1: column index, channel 2: image index."""
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    cols = torch.arange(size, dtype=torch.float32)[None, :].expand(size, size)
    return torch.stack([torch.stack([rows, cols, torch.full((size, size), float(i))]) for i in range(n)])


def small_model(n_permutations: int = 6, **options) -> JigsawPuzzle:
    torch.manual_seed(0)
    permutations = make_permutation_set(n_permutations, seed=1)
    return JigsawPuzzle(SmallCNN(width=4, feature_dim=8), permutations, hidden_dim=16, **options)


def test_puzzle_labels_name_the_permutation_of_the_tiles():
    model = small_model(tile_size=4, jitter=0)
    images = coordinate_images(5, 12)  # cells of 4 px: tile j starts at (4 * (p // 3), 4 * (p % 3))
    tiles, labels = model.make_puzzles(images, torch.Generator().manual_seed(0))
    assert tiles.shape == (5, 9, 3, 4, 4)
    for n in range(5):
        permutation = model.permutations[labels[n]].tolist()
        for j in range(9):
            tile = tiles[n, j]
            position = permutation[j]
            assert (int(tile[0, 0, 0]), int(tile[1, 0, 0])) == (4 * (position // 3), 4 * (position % 3))
            assert int(tile[2, 0, 0]) == n


def test_logits_see_the_tile_features_concatenated_in_tile_order():
    model = small_model().eval()
    torch.manual_seed(1)
    tiles = torch.rand(2, 9, 3, 8, 8)
    concatenated = torch.cat([model.encoder(tiles[:, j]) for j in range(9)], dim=1)
    assert torch.allclose(model(tiles), model.classifier(concatenated), atol=1e-5)
    swapped = tiles[:, [1, 0, 2, 3, 4, 5, 6, 7, 8]]
    assert not torch.allclose(model(swapped), model(tiles), atol=1e-4)


def test_solve_puts_tiles_back_by_the_predicted_permutation():
    model = small_model().eval()
    torch.manual_seed(2)
    tiles = torch.rand(4, 9, 3, 8, 8)
    predicted = model(tiles).argmax(1)
    solved = model.solve(tiles)
    for n in range(4):
        for j, position in enumerate(model.permutations[predicted[n]].tolist()):
            assert torch.equal(solved[n, position], tiles[n, j])


def test_assemble_tiles_lays_tiles_out_row_major_with_gaps():
    torch.manual_seed(3)
    tiles = torch.rand(2, 4, 3, 3, 3)
    image = assemble_tiles(tiles, grid=2, gap=1)
    assert image.shape == (2, 3, 7, 7)
    for n in range(2):
        for position in range(4):
            top, left = 4 * (position // 2), 4 * (position % 2)
            assert torch.equal(image[n, :, top:top + 3, left:left + 3], tiles[n, position])
        assert (image[n, :, 3, :] == 1).all() and (image[n, :, :, 3] == 1).all()


def test_bad_inputs_are_rejected_with_a_fix():
    encoder = SmallCNN(width=4, feature_dim=8)
    with pytest.raises(ValueError, match=r"shape \(P, grid\*grid\)"):
        JigsawPuzzle(encoder, torch.arange(4)[None].repeat(3, 1))
    with pytest.raises(ValueError, match="at least 2 permutations"):
        JigsawPuzzle(encoder, torch.arange(9)[None])
    with pytest.raises(ValueError, match="expected 9 tiles"):
        small_model()(torch.rand(2, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="tiles must have shape"):
        assemble_tiles(torch.rand(2, 9, 3, 4, 4), grid=2)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        assemble_tiles(torch.rand(2, 4, 3, 4, 4), grid=2, gap=-1)


def test_one_training_step_through_the_shared_loop():
    model = small_model()
    _, changed = train_one_step(model, random_uint8_images(8), lr=0.01)
    assert any(changed)
    assert torch.equal(model.permutations, make_permutation_set(6, seed=1))  # the set is not trained


# ---------------------------------------------------------------------------
# Jigsaw: the counter-measures against shortcuts.
# ---------------------------------------------------------------------------


def test_standardised_tiles_have_zero_mean_and_unit_std_per_channel():
    tiles = torch.rand(2, 9, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.5
    standardised = standardise_tiles(tiles)
    assert standardised.shape == tiles.shape
    for n, j, c in itertools.product(range(2), range(9), range(3)):
        pixels = tiles[n, j, c].double()
        expected = (pixels - pixels.mean()) / (pixels.var() + 1e-6).sqrt()
        torch.testing.assert_close(standardised[n, j, c].double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(standardised.mean(dim=(-2, -1)), torch.zeros(2, 9, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardised.std(dim=(-2, -1)), torch.ones(2, 9, 3), atol=1e-4, rtol=0)


def test_normalise_tiles_standardises_the_tiles_before_the_encoder():
    tiles = torch.rand(2, 9, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    normalising, plain = small_model(normalise_tiles=True).eval(), small_model().eval()  # the same weights
    torch.testing.assert_close(normalising(tiles), plain(standardise_tiles(tiles)))
    scale, shift = torch.rand(2, 2, 9, 3, 1, 1, generator=torch.Generator().manual_seed(2)) * 0.25
    other_brightness_and_contrast = tiles * (0.5 + scale) + shift  # per tile and channel, still in [0, 1]
    torch.testing.assert_close(normalising(other_brightness_and_contrast), normalising(tiles), rtol=1e-4, atol=1e-4)


def test_grayscale_tiles_have_equal_channels_and_follow_the_seed():
    tiles = torch.rand(4, 9, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    gray = grayscale_tiles(tiles, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(gray, grayscale_tiles(tiles, 0.5, torch.Generator().manual_seed(3)))
    chosen = torch.rand(4, 9, generator=torch.Generator().manual_seed(3)) < 0.5  # the draw, one per tile
    assert 0 < chosen.sum() < 36
    luma = 0.2989 * tiles[:, :, 0] + 0.587 * tiles[:, :, 1] + 0.114 * tiles[:, :, 2]
    torch.testing.assert_close(gray[chosen], luma[chosen][:, None].expand(-1, 3, -1, -1))
    assert torch.equal(gray[~chosen], tiles[~chosen])
    assert torch.equal(grayscale_tiles(tiles, 1.0)[:, :, 0], grayscale_tiles(tiles, 1.0)[:, :, 2])
    assert grayscale_tiles(tiles, 0.0) is tiles


def test_one_training_step_with_both_counter_measures():
    model = small_model(normalise_tiles=True, tile_grayscale_p=0.5)
    _, changed = train_one_step(model, random_uint8_images(8), lr=0.01)
    assert any(changed)


def test_counter_measures_are_off_by_default_and_change_the_fingerprint_when_on():
    data = ImageData(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
    described = [describe_run(small_model(**options), TrainConfig(), data)
                 for options in ({}, {"normalise_tiles": False, "tile_grayscale_p": 0.0},
                                 {"normalise_tiles": True}, {"tile_grayscale_p": 0.5})]
    assert described[1] == described[0]
    assert len({d["architecture"] for d in described[1:]}) == 3


def test_counter_measures_reject_bad_values():
    with pytest.raises(ValueError, match="normalise_tiles must be True or False"):
        small_model(normalise_tiles=1)
    with pytest.raises(ValueError, match=r"tile_grayscale_p must lie in \[0, 1\]"):
        small_model(tile_grayscale_p=1.5)
    with pytest.raises(ValueError, match="tile_grayscale_p must lie"):
        grayscale_tiles(torch.rand(1, 9, 3, 8, 8), -0.1)


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
    permutations = make_permutation_set(10, n_tiles=4, seed=3, criterion=criterion)
    rows = [tuple(row) for row in permutations.tolist()]
    assert rows == loop_greedy(4, 10, rows[0], criterion)


def test_permutation_set_default_is_valid_and_reports_min_distance():
    permutations = make_permutation_set(100, n_tiles=9, seed=0)
    assert permutations.shape == (100, 9) and permutations.dtype == torch.long
    rows = [tuple(row) for row in permutations.tolist()]
    assert len(set(rows)) == 100
    assert all(sorted(row) == list(range(9)) for row in rows)
    brute_force_min = min(hamming(p, q) for p, q in itertools.combinations(rows, 2))
    assert min_hamming_distance(permutations) == brute_force_min
    assert brute_force_min >= 6


@pytest.mark.parametrize("n_tiles, n_permutations", [(3, 2), (3, 3), (4, 4), (4, 2)])
def test_greedy_min_distance_reaches_brute_force_optimum_on_small_cases(n_tiles, n_permutations):
    everything = list(itertools.permutations(range(n_tiles)))
    optimum = max(
        min(hamming(p, q) for p, q in itertools.combinations(subset, 2))
        for subset in itertools.combinations(everything, n_permutations)
    )
    permutations = make_permutation_set(n_permutations, n_tiles=n_tiles, seed=1)
    assert min_hamming_distance(permutations) == optimum


def test_permutation_set_is_reproducible_and_depends_on_seed():
    a = make_permutation_set(20, n_tiles=5, seed=7)
    assert torch.equal(a, make_permutation_set(20, n_tiles=5, seed=7))
    assert not torch.equal(a, make_permutation_set(20, n_tiles=5, seed=8))


def test_min_hamming_is_met_or_names_the_achievable_size():
    permutations = make_permutation_set(4, n_tiles=4, min_hamming=4)
    assert min_hamming_distance(permutations) == 4
    # At most 4 permutations of 4 tiles differ pairwise in all 4 positions (rows of a Latin square).
    with pytest.raises(ValueError, match=r"only 4 permutations.*lower min_hamming or n_permutations"):
        make_permutation_set(5, n_tiles=4, min_hamming=4)


def test_permutation_set_bad_sizes():
    with pytest.raises(ValueError, match=r"3! = 6"):
        make_permutation_set(7, n_tiles=3)
    with pytest.raises(ValueError, match="n_tiles must lie in"):
        make_permutation_set(10, n_tiles=10)
    with pytest.raises(ValueError, match="criterion"):
        make_permutation_set(10, n_tiles=4, criterion="max")


# ---------------------------------------------------------------------------
# Jigsaw: tiles.
# ---------------------------------------------------------------------------


def test_jigsaw_tiles_without_jitter_match_direct_slicing():
    torch.manual_seed(0)
    images = torch.rand(5, 3, 32, 32)
    permutations = make_permutation_set(6, n_tiles=9)
    generator = torch.Generator().manual_seed(0)
    tiles, labels = jigsaw_tiles(images, permutations, grid=3, jitter=0, generator=generator)
    assert tiles.shape == (5, 9, 3, 8, 8) and labels.shape == (5,)
    # 32 px, grid 3: cells of 10 px starting at row/col 1; 8 px tiles centred with 1 px slack.
    expected_top_left = {i: (1 + (i // 3) * 10 + 1, 1 + (i % 3) * 10 + 1) for i in range(9)}
    ordered = unshuffle(tiles, permutations, labels)
    for n in range(5):
        permutation = permutations[labels[n]].tolist()
        for j in range(9):
            top, left = expected_top_left[permutation[j]]
            assert torch.equal(tiles[n, j], images[n, :, top : top + 8, left : left + 8])
        for i in range(9):
            top, left = expected_top_left[i]
            assert torch.equal(ordered[n, i], images[n, :, top : top + 8, left : left + 8])


def test_jigsaw_labels_decode_to_the_permutation_and_jitter_stays_in_the_cell():
    images = coordinate_images(60, 32)
    permutations = make_permutation_set(4, n_tiles=9)
    generator = torch.Generator().manual_seed(1)
    tiles, labels = jigsaw_tiles(images, permutations, generator=generator)
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
    permutations = make_permutation_set(10)
    first = jigsaw_tiles(images, permutations, generator=torch.Generator().manual_seed(5))
    second = jigsaw_tiles(images, permutations, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_jigsaw_bad_inputs():
    images = torch.rand(2, 3, 32, 32)
    permutations = make_permutation_set(4, n_tiles=9)
    with pytest.raises(ValueError, match=r"tile_size.*cell = .* = 10 px.*grid\*tile_size = 33"):
        jigsaw_tiles(images, permutations, tile_size=11)
    with pytest.raises(ValueError, match="smaller grid"):
        jigsaw_tiles(torch.rand(2, 3, 2, 2), permutations, grid=3)
    with pytest.raises(ValueError, match="jitter 2 moves a tile"):
        jigsaw_tiles(images, permutations, tile_size=8, jitter=2)
    with pytest.raises(ValueError, match=r"\(P, 4\)"):
        jigsaw_tiles(images, permutations, grid=2)
    with pytest.raises(ValueError, match="permutation of 0..8"):
        jigsaw_tiles(images, torch.zeros(3, 9, dtype=torch.long))
