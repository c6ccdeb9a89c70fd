"""Tests of the Image Rotation method (Gidaris et al. 2018) against explicit loops."""

import pytest
import torch
import torch.nn.functional as F

from sslbook import train
from sslbook.methods.rotation import RotationPrediction, rotation_task, stage_features
from sslbook.networks import SmallCNN

from one_step import random_uint8_images, train_one_step


def rotate_counter_clockwise_by_loop(image: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Rotate (C, S, S) by quarter_turns * 90 degrees counter-clockwise, pixel by pixel: out[i, j] = in[j, S-1-i]."""
    for _ in range(quarter_turns):
        size = image.shape[-1]
        turned = torch.empty_like(image)
        for i in range(size):
            for j in range(size):
                turned[:, i, j] = image[:, j, size - 1 - i]
        image = turned
    return image


def small_encoder() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(width=4, feature_dim=8)


def test_every_rotation_label_matches_the_rotation_applied():
    torch.manual_seed(0)
    images = torch.rand(3, 3, 5, 5)
    rotated, labels = rotation_task(images)
    assert rotated.shape == (12, 3, 5, 5) and labels.shape == (12,)
    for row in range(12):
        image = images[row % 3]
        matching_turns = [k for k in range(4) if torch.equal(rotated[row], rotate_counter_clockwise_by_loop(image, k))]
        assert matching_turns == [int(labels[row])], f"row {row}: label {int(labels[row])}, rotation {matching_turns}"
        assert torch.equal(torch.rot90(rotated[row], -int(labels[row]), dims=(1, 2)), image)  # turns back


def test_two_rotation_task_relabels_the_chosen_rotations():
    torch.manual_seed(1)
    images = torch.rand(2, 3, 4, 4)
    rotated, labels = rotation_task(images, quarter_turns=(0, 2))
    assert labels.tolist() == [0, 0, 1, 1]
    for row in range(4):
        expected = rotate_counter_clockwise_by_loop(images[row % 2], (0, 2)[int(labels[row])])
        assert torch.equal(rotated[row], expected)


@pytest.mark.parametrize("turns", [(0,), (0, 0), (0, 4), (1, -1)])
def test_bad_quarter_turns_are_rejected(turns):
    with pytest.raises(ValueError, match="quarter_turns must list at least two distinct rotations"):
        rotation_task(torch.rand(1, 3, 4, 4), turns)
    with pytest.raises(ValueError, match="quarter_turns"):
        RotationPrediction(small_encoder(), turns)


def test_training_loss_is_the_cross_entropy_over_every_rotated_copy():
    model = RotationPrediction(small_encoder()).eval()  # eval: batch norm uses fixed statistics
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    batch = train.Batch(images, torch.zeros(3, dtype=torch.long), torch.arange(3), torch.Generator())
    per_copy = []
    for n in range(3):
        for k in range(4):
            turned = rotate_counter_clockwise_by_loop(images[n].float() / 255, k)
            logits = model.head(model.encoder(turned[None]))
            per_copy.append(F.cross_entropy(logits, torch.tensor([k])))
    expected = torch.stack(per_copy).mean()
    assert torch.allclose(model.training_loss(batch)["loss"], expected, atol=1e-5)


def test_stage_features_pool_every_block_map_to_the_grid():
    encoder = small_encoder().eval()
    images = torch.rand(3, 3, 16, 16)
    features = stage_features(encoder, images, grid=2, batch_size=2)
    maps = encoder.forward_stages(images)
    assert len(features) == len(maps) == 4
    for feature, feature_map in zip(features, maps):
        channels, height, width = feature_map.shape[1:]
        half_h, half_w = height // 2, width // 2
        cells = [feature_map[:, :, r * half_h:(r + 1) * half_h, c * half_w:(c + 1) * half_w].mean((-2, -1))
                 for r in range(2) for c in range(2)]
        expected = torch.stack(cells, dim=-1).reshape(3, channels * 4)  # channel-major, then cell row-major
        assert torch.allclose(feature, expected, atol=1e-5)


def test_stage_features_reject_bad_arguments():
    with pytest.raises(ValueError, match="grid must be a positive int"):
        stage_features(small_encoder(), torch.rand(1, 3, 8, 8), grid=0)
    with pytest.raises(ValueError, match="has no forward_stages"):
        stage_features(torch.nn.Linear(3, 3), torch.rand(1, 3, 8, 8))


def test_one_training_step_through_the_shared_loop():
    history, changed = train_one_step(RotationPrediction(small_encoder()), random_uint8_images(8, size=8), lr=0.01)
    assert 0 <= history.steps[0]["accuracy"] <= 1
    assert any(changed)


def test_rotation_task_label_one_is_counter_clockwise():
    image = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(1, 3, 2, 2)
    rotated, labels = rotation_task(image)
    # 90 degrees counter-clockwise: the right column moves to the top row.
    assert labels[1] == 1
    assert torch.equal(rotated[1, 0], torch.tensor([[2.0, 4.0], [1.0, 3.0]]))


def test_rotation_task_rejects_non_square_images():
    with pytest.raises(ValueError, match="square"):
        rotation_task(torch.rand(2, 3, 4, 5))
