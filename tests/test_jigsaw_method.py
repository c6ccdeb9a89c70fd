"""Tests of the Jigsaw Puzzle method (Noroozi & Favaro 2016): puzzle labels, the context-free network, layout."""

import pytest
import torch

from sslbook import pretext
from sslbook.methods.jigsaw import JigsawPuzzle, assemble_tiles
from sslbook.networks import SmallCNN

from one_step import random_uint8_images, train_one_step


def coordinate_images(n: int, size: int) -> torch.Tensor:
    """Channel 0: row index, channel 1: column index, channel 2: image index."""
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    cols = torch.arange(size, dtype=torch.float32)[None, :].expand(size, size)
    return torch.stack([torch.stack([rows, cols, torch.full((size, size), float(i))]) for i in range(n)])


def small_model(n_permutations: int = 6, **options) -> JigsawPuzzle:
    torch.manual_seed(0)
    permutations = pretext.make_permutation_set(n_permutations, seed=1)
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
    assert torch.equal(model.permutations, pretext.make_permutation_set(6, seed=1))  # the set is not trained
