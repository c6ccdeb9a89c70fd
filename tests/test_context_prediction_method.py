"""Tests of the Context Prediction method (Doersch et al. 2015): pair geometry, late fusion, bad inputs."""

import pytest
import torch

from sslbook.methods.context_prediction import NEIGHBOUR_OFFSETS, ContextPrediction, context_pairs, neighbour_grid_index
from sslbook.networks import SmallCNN

from one_step import random_uint8_images, train_one_step

# Position labels written out by hand: (drow, dcol) of the neighbour, row-major around the centre.
EXPECTED_OFFSETS = {0: (-1, -1), 1: (-1, 0), 2: (-1, 1), 3: (0, -1), 4: (0, 1), 5: (1, -1), 6: (1, 0), 7: (1, 1)}


def top_left_of(patch: torch.Tensor) -> tuple[int, int]:
    return int(patch[0, 0, 0]), int(patch[1, 0, 0])


def coordinate_images(n: int, size: int) -> torch.Tensor:
    """Channel 0: row index, channel 1: column index, channel 2: image index."""
    rows = torch.arange(size, dtype=torch.float32)[:, None].expand(size, size)
    cols = torch.arange(size, dtype=torch.float32)[None, :].expand(size, size)
    return torch.stack([torch.stack([rows, cols, torch.full((size, size), float(i))]) for i in range(n)])


def small_model(**options) -> ContextPrediction:
    torch.manual_seed(0)
    return ContextPrediction(SmallCNN(width=4, feature_dim=8), hidden_dim=16, **options)


@pytest.mark.parametrize("gap, jitter", [(2, 1), (0, 0), (3, 1), (0, 4)])
def test_labels_match_the_neighbours_geometry(gap, jitter):
    model = small_model(gap=gap, jitter=jitter, pairs_per_image=3)
    images = coordinate_images(4, 32)
    centre, neighbour, labels = model.make_pairs(images, torch.Generator().manual_seed(gap))
    assert centre.shape == neighbour.shape == (12, 3, 8, 8) and labels.shape == (12,)
    step = 8 + gap
    for m in range(12):
        assert int(centre[m, 2, 0, 0]) == int(neighbour[m, 2, 0, 0]) == m % 4  # both from image m mod N
        row_shift = int(neighbour[m, 0, 0, 0] - centre[m, 0, 0, 0])
        col_shift = int(neighbour[m, 1, 0, 0] - centre[m, 1, 0, 0])
        drow, dcol = EXPECTED_OFFSETS[int(labels[m])]
        # the grid puts the neighbour `step` px away per offset; each patch's jitter moves it by <= jitter
        assert abs(row_shift - drow * step) <= 2 * jitter and abs(col_shift - dcol * step) <= 2 * jitter
    assert set(labels.tolist()) <= set(range(8))
    assert torch.equal(NEIGHBOUR_OFFSETS, torch.tensor(list(EXPECTED_OFFSETS.values())))


def test_grid_index_places_each_label_at_its_offset_from_the_centre_cell():
    labels = torch.arange(8)
    cells = neighbour_grid_index(labels)
    for label, cell in zip(labels.tolist(), cells.tolist()):
        drow, dcol = EXPECTED_OFFSETS[label]
        assert cell == (1 + drow) * 3 + (1 + dcol)
    with pytest.raises(ValueError, match="position labels must lie in 0..7"):
        neighbour_grid_index(torch.tensor([0, 8]))


def test_colour_dropping_keeps_one_channel_per_patch():
    model = small_model(colour_dropping=True)
    torch.manual_seed(1)
    centre, neighbour, _ = model.make_pairs(torch.rand(6, 3, 32, 32), torch.Generator().manual_seed(0))
    for patch in torch.cat([centre, neighbour]):
        spread = patch.flatten(1).std(dim=1)
        assert int((spread > 0.1 * spread.max()).sum()) == 1  # one image channel, two near-constant noise channels


def test_late_fusion_concatenates_the_two_patch_features():
    model = small_model().eval()
    torch.manual_seed(2)
    centre, neighbour = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    expected = model.classifier(torch.cat([model.encoder(centre), model.encoder(neighbour)], dim=1))
    assert torch.allclose(model(centre, neighbour), expected, atol=1e-5)
    assert not torch.allclose(model(neighbour, centre), expected, atol=1e-4)  # the order of the pair matters


def test_bad_inputs_are_rejected_with_a_fix():
    with pytest.raises(ValueError, match="pairs_per_image must be a positive int"):
        small_model(pairs_per_image=0)
    with pytest.raises(ValueError, match="lower patch_size, gap or jitter"):
        small_model(patch_size=12).make_pairs(torch.rand(2, 3, 32, 32))


def test_one_training_step_through_the_shared_loop():
    _, changed = train_one_step(small_model(pairs_per_image=2), random_uint8_images(8), lr=0.01)
    assert any(changed)


# ---------------------------------------------------------------------------
# Context prediction.
# ---------------------------------------------------------------------------


def test_neighbour_offsets_are_row_major_around_the_centre():
    expected = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]
    assert [tuple(row) for row in NEIGHBOUR_OFFSETS.tolist()] == expected


def test_context_pairs_without_jitter_sit_exactly_at_the_label_offset():
    images = coordinate_images(80, 32)
    generator = torch.Generator().manual_seed(0)
    centre, neighbour, labels = context_pairs(images, patch_size=8, gap=2, jitter=0, generator=generator)
    assert centre.shape == neighbour.shape == (80, 3, 8, 8)
    assert set(labels.tolist()) == set(range(8))
    for n in range(80):
        drow, dcol = NEIGHBOUR_OFFSETS[labels[n]].tolist()
        centre_top, centre_left = top_left_of(centre[n])
        top, left = top_left_of(neighbour[n])
        assert (top - centre_top, left - centre_left) == (drow * 10, dcol * 10)
        assert torch.equal(centre[n], images[n, :, centre_top : centre_top + 8, centre_left : centre_left + 8])
        assert torch.equal(neighbour[n], images[n, :, top : top + 8, left : left + 8])


def test_context_pairs_jitter_stays_within_bounds():
    images = coordinate_images(100, 32)
    generator = torch.Generator().manual_seed(1)
    centre, neighbour, labels = context_pairs(images, patch_size=8, gap=2, jitter=1, generator=generator)
    deviations = set()
    for n in range(100):
        drow, dcol = NEIGHBOUR_OFFSETS[labels[n]].tolist()
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
    plain = context_pairs(images, generator=torch.Generator().manual_seed(2))
    dropped = context_pairs(images, colour_dropping=True, generator=torch.Generator().manual_seed(2))
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
        context_pairs(torch.rand(2, 3, 32, 32), patch_size=9, gap=2, jitter=1)
