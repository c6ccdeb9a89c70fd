"""A training step makes the host wait for the device nowhere: no op of the step's training_loss,
backward or after_step is one that syncs on a GPU (counted on the CPU by benchmarks.host_syncs)."""
import copy

import pytest
import torch
from torch import nn

from benchmarks.host_syncs import SyncCounter, method_step_syncs
from sslbook.augment import ViewRecipe, byol_cifar, make_views, simclr_cifar
from sslbook.methods.byol import ema_update

SYNC_FREE_METHODS = ["simclr", "byol", "barlow_twins", "align_uniform", "debiased", "hard_negatives", "invaspread"]


def test_the_counter_counts_item_bool_nonzero_mask_indexing_and_tensors_from_python_numbers():
    x, repeats, indices = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1, 2, 0]), torch.tensor([0, 2])
    with SyncCounter() as counter:
        x.sum().item()
        bool(x.max() > 0)
        x.nonzero()
        x[x > 0]
        x.repeat_interleave(repeats)
        x.new_tensor([1.0, 2.0])
        x.repeat_interleave(repeats, output_size=3)  # sized: no sync
        x[indices]  # integer indices: no sync
        torch.where(x > 0, x, 0.0)
        x.new_full((2,), 1.0)
    assert counter.counts == {"_local_scalar_dense": 2, "nonzero": 1, "index": 1, "repeat_interleave": 1,
                              "lift_fresh": 1}


@pytest.mark.parametrize("name", SYNC_FREE_METHODS)
def test_a_training_step_makes_no_host_sync(name):
    counts = method_step_syncs(name)
    assert not counts, f"{name}: one training step makes sync-causing ops {dict(counts)}"


@pytest.mark.parametrize("recipe", [simclr_cifar(), byol_cifar()[0], byol_cifar()[1],
                                    ViewRecipe(output_size=20, blur_p=0.5, blur_kernel_size=5, solarize_p=0.5, hue=0)],
                         ids=["simclr", "byol_1", "byol_2", "everything_on"])
def test_views_of_uint8_images_make_no_host_sync(recipe):
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with SyncCounter() as counter:
        make_views(images, recipe, n_views=2, generator=torch.Generator().manual_seed(1))
    assert not counter.counts


def test_the_foreach_ema_gives_the_numbers_of_the_loop_over_parameters():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 30 * 30, 5))
    target = copy.deepcopy(online)
    with torch.no_grad():
        for parameter in online.parameters():
            parameter.add_(torch.randn_like(parameter))
    expected = copy.deepcopy(target)
    for tau in (0.99, 0.7, 0.0, 1.0):
        ema_update(target, online, tau)
        with torch.no_grad():  # the update as a loop: xi <- tau xi + (1 - tau) theta
            for xi, theta in zip(expected.parameters(), online.parameters()):
                xi.mul_(tau).add_(theta, alpha=1 - tau)
        for (name, actual), wanted in zip(target.state_dict().items(), expected.state_dict().values()):
            assert torch.equal(actual, wanted), (tau, name)
