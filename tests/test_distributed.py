"""Two CPU processes with gloo must give the loss and gradients of one process on the global batch."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from sslbook import distributed
from sslbook.losses import barlow_twins_loss, nt_xent

WORLD = 2
GLOBAL_BATCH = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def inputs():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(GLOBAL_BATCH, 12, generator=generator), torch.randn(GLOBAL_BATCH, 12, generator=generator)


def model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 6))


LOSSES = {"nt_xent": lambda a, b: nt_xent(a, b, 0.2), "barlow_twins": lambda a, b: barlow_twins_loss(a, b, 0.1)}


def run_rank(rank, port, loss_name, out_folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        network = nn.parallel.DistributedDataParallel(model())
        x1, x2 = (x.chunk(WORLD)[rank] for x in inputs())
        loss = LOSSES[loss_name](distributed.gather(network(x1)), distributed.gather(network(x2)))
        loss.backward()
        torch.save({"loss": loss.detach(), "grads": [p.grad for p in network.parameters()]},
                   os.path.join(out_folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_two_processes_match_one_process_on_the_global_batch(loss_name, tmp_path):
    mp.spawn(run_rank, args=(free_port(), loss_name, str(tmp_path)), nprocs=WORLD, join=True)
    single = model()
    x1, x2 = inputs()
    expected_loss = LOSSES[loss_name](single(x1), single(x2))
    expected_loss.backward()
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(result["loss"], expected_loss.detach())
        for got, expected in zip(result["grads"], (p.grad for p in single.parameters())):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def train_rank(rank, port, out_folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(WORLD), RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from sslbook.augment import simclr_cifar
        from sslbook.data import ImageData
        from sslbook.methods.simclr import SimCLR
        from sslbook.networks import SmallCNN
        from sslbook.train import TrainConfig, train

        torch.manual_seed(0)
        method = SimCLR(SmallCNN(width=4, feature_dim=8), projection_dim=4, hidden_dim=8, recipe=simclr_cifar())
        images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        history = train(method, ImageData(images, torch.zeros(32, dtype=torch.long), ["x"]),
                        TrainConfig(epochs=1, batch_size=16), device="cpu", progress=False)
        torch.save({"weights": [p.detach() for p in method.parameters()], "images": history.images_seen},
                   os.path.join(out_folder, f"trained{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_training_loop_keeps_the_processes_in_step(tmp_path):
    mp.spawn(train_rank, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    first, second = (torch.load(tmp_path / f"trained{r}.pt", weights_only=True) for r in range(WORLD))
    assert first["images"] == 32
    for a, b in zip(first["weights"], second["weights"]):
        torch.testing.assert_close(a, b)


def check_sync_batch_norm_refused_on_cpu(rank, port, out_folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from sslbook.data import ImageData
        from sslbook.train import TrainConfig, train

        class Method(nn.Module):
            def __init__(self):
                super().__init__()
                self.norm = nn.BatchNorm1d(2)

            def training_loss(self, batch):
                return self.norm(batch.images.float().flatten(1)[:, :2]).sum()

        images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
        try:
            train(Method(), ImageData(images, torch.zeros(8, dtype=torch.long), ["x"]),
                  TrainConfig(epochs=1, batch_size=4, sync_batch_norm=True), device="cpu", progress=False)
        except ValueError as error:
            open(os.path.join(out_folder, f"error{rank}.txt"), "w").write(str(error))
    finally:
        dist.destroy_process_group()


def test_sync_batch_norm_on_cpu_processes_is_refused_clearly(tmp_path):
    mp.spawn(check_sync_batch_norm_refused_on_cpu, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    assert "sync_batch_norm needs GPUs" in (tmp_path / "error0.txt").read_text()


def test_gather_is_the_identity_in_one_process():
    x = torch.randn(3, 2)
    assert distributed.gather(x) is x and distributed.world_size() == 1 and distributed.rank() == 0


SIMCLR_FAMILY = {"simclr": ("sslbook.methods.simclr", "SimCLR"),
                 "align_uniform": ("sslbook.methods.align_uniform", "AlignUniform"),
                 "debiased": ("sslbook.methods.debiased", "DebiasedSimCLR"),
                 "hard_negatives": ("sslbook.methods.hard_negatives", "HardNegativeSimCLR")}


def simclr_family_member(name: str) -> nn.Module:
    """A tiny member of SimCLR's family whose views are the images themselves (no randomness), in eval mode.

    Without random views and batch statistics, the projections of a process's share of the batch are
    exactly the rows of the single-process projections, so only the contrast over the batch can differ.
    """
    import importlib

    from sslbook.augment import ViewRecipe

    class LinearEncoder(nn.Sequential):
        feature_dim = 8

        def __init__(self):
            super().__init__(nn.Flatten(), nn.Linear(3 * 32 * 32, self.feature_dim))

    module_name, class_name = SIMCLR_FAMILY[name]
    torch.manual_seed(0)
    identity_views = ViewRecipe(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                                grayscale_p=0.0)
    method = getattr(importlib.import_module(module_name), class_name)(
        LinearEncoder(), projection_dim=4, hidden_dim=8, recipe=identity_views)
    return method.eval()


def family_images() -> torch.Tensor:
    return torch.randint(0, 256, (GLOBAL_BATCH, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def family_loss(method: nn.Module, images: torch.Tensor) -> torch.Tensor:
    from sslbook.train import Batch

    output = method.training_loss(Batch(images, torch.zeros(len(images), dtype=torch.long),
                                        torch.arange(len(images)), torch.Generator().manual_seed(0)))
    return output if isinstance(output, torch.Tensor) else output["loss"]


def family_rank(rank, port, name, out_folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        loss = family_loss(simclr_family_member(name), family_images().chunk(WORLD)[rank])
        torch.save({"loss": loss.detach()}, os.path.join(out_folder, f"family{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", sorted(SIMCLR_FAMILY))
def test_simclr_and_its_variants_contrast_over_the_global_batch(name, tmp_path):
    mp.spawn(family_rank, args=(free_port(), name, str(tmp_path)), nprocs=WORLD, join=True)
    with torch.no_grad():
        expected = family_loss(simclr_family_member(name), family_images())
        local_only = family_loss(simclr_family_member(name), family_images().chunk(WORLD)[0])
    assert not torch.allclose(expected, local_only)  # the test can tell a per-process contrast apart
    for rank in range(WORLD):
        torch.testing.assert_close(torch.load(tmp_path / f"family{rank}.pt", weights_only=True)["loss"], expected)
