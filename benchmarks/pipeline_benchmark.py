"""SimCLR training steps: sslbook's on-device pipeline against a conventional DataLoader pipeline.

Both pipelines train the same SimCLR model (CIFAR ResNet-18 on a GPU) with the same recipe, batch
size, optimiser and precision, one after the other in one run:

- sslbook: the training set sits on the device as uint8; each step indexes a batch there and
  ``sslbook.augment`` makes both views of the whole batch on the device (``SimCLR.training_loss``).
- conventional: as common SSL libraries do, a Dataset applies torchvision.transforms.v2 to one
  image at a time in DataLoader worker processes; batches are pinned and copied to the device.

Printed per pipeline: images per second (source images; each gives two views), seconds per
CIFAR-10 epoch (50,000 images), peak GPU memory, and the achieved FLOP/s (the FLOPs of one eager
step, counted by ``torch.utils.flop_counter``, times the steps per second) with its fraction of
the GPU's dense bf16 peak where the GPU is known; then the ratio of the two throughputs. Images are random uint8 (the speed of these
operations does not depend on the pixels). Without a GPU the script runs its CPU variant (the
small CNN, fewer steps) and says so.

    python -m benchmarks.pipeline_benchmark [--steps 50] [--batch-size 512] [--workers 8] [--compile]
    python -m benchmarks.pipeline_benchmark --out results/benchmarks   # also write a JSON record
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.augment_benchmark import TwoViewDataset
from sslbook.augment import simclr_cifar
from sslbook.losses import nt_xent
from sslbook.methods.simclr import SimCLR
from sslbook.mixed_precision import AUTOCAST_DTYPES, autocast_networks, choose_precision
from sslbook.networks import make_encoder
from sslbook.results import hardware
from sslbook.train import Batch, compile_networks

CIFAR10_TRAIN_IMAGES = 50_000
DENSE_BF16_PEAK_FLOPS = {  # the vendors' dense (no sparsity) bf16 tensor-core peaks
    "H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12,
}


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU named like ``torch.cuda.get_device_name()``, or None if unknown."""
    for key, flops in DENSE_BF16_PEAK_FLOPS.items():  # "H100 PCIe" is checked before "H100"
        if all(word in device_name for word in key.split()):
            return flops
    return None


def make_model(backbone: str, device: torch.device, compiled: bool) -> tuple[SimCLR, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = SimCLR(make_encoder(backbone), recipe=simclr_cifar()).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if compiled:
        compile_networks(model)
    return model, torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)


def optimiser_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def sslbook_steps(model, optimizer, images: torch.Tensor, batch_size: int, device: torch.device):
    """An endless iterator of timed-step closures over the on-device uint8 training set."""
    on_device = images.to(device)
    generator = torch.Generator(device=device).manual_seed(1)
    order = torch.randperm(len(on_device), device=device)
    position = 0
    while True:
        if position + batch_size > len(order):
            order, position = torch.randperm(len(on_device), device=device), 0
        index = order[position:position + batch_size]
        position += batch_size

        def step(index=index):
            batch = Batch(on_device[index], torch.zeros_like(index), index, generator)
            optimiser_step(optimizer, model.training_loss(batch))
        yield step


def conventional_steps(model, optimizer, images: torch.Tensor, batch_size: int, device: torch.device, workers: int):
    """The same steps fed by torchvision.transforms.v2 per image through a DataLoader."""
    loader = DataLoader(TwoViewDataset(images), batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        prefetch_factor=4 if workers > 0 else None)
    while True:
        for first, second in loader:
            def step(first=first, second=second):
                views = torch.cat([first, second]).to(device, non_blocking=True)
                if device.type == "cuda":
                    views = views.contiguous(memory_format=torch.channels_last)
                z_i, z_j = model.project(views).chunk(2)
                optimiser_step(optimizer, nt_xent(z_i, z_j, model.temperature))
            yield step


def measure(steps, n_steps: int, warmup: int, batch_size: int, device: torch.device) -> dict:
    """Throughput over n_steps after warm-up (loading included: the closures are fetched in the loop)."""
    for _ in range(warmup):
        next(steps)()
    synchronise(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(n_steps):
        next(steps)()
    synchronise(device)
    images_per_second = n_steps * batch_size / (time.perf_counter() - started)
    return {"images_per_second": images_per_second,
            "seconds_per_epoch": CIFAR10_TRAIN_IMAGES / images_per_second,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def flops_per_image(backbone: str, images: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Matrix-multiply and convolution FLOPs of one eager training step (forward and backward), per image."""
    model, optimizer = make_model(backbone, device, compiled=False)
    counter = FlopCounterMode(display=False)
    with counter:
        next(sslbook_steps(model, optimizer, images, batch_size, device))()
    return counter.get_total_flops() / batch_size


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    on_gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18" if on_gpu else "small_cnn")
    parser.add_argument("--batch-size", type=int, default=512 if on_gpu else 128)
    parser.add_argument("--steps", type=int, default=50 if on_gpu else 5, help="timed steps per pipeline")
    parser.add_argument("--warmup", type=int, default=10 if on_gpu else 2)
    parser.add_argument("--images", type=int, default=CIFAR10_TRAIN_IMAGES if on_gpu else 4096,
                        help="size of the (random) training set")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the conventional pipeline")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks in both pipelines")
    parser.add_argument("--out", type=Path, help="folder for a JSON record of the figures")
    args = parser.parse_args(argv)
    if args.images < args.batch_size * 2:
        parser.error(f"--images {args.images} must hold at least two batches of {args.batch_size}")

    device = torch.device("cuda" if on_gpu else "cpu")
    print(f"SimCLR, {args.backbone}, batch {args.batch_size}, on {hardware()}; torch {torch.__version__}")
    if not on_gpu:
        print("No GPU: this is the CPU variant (small CNN, few steps); the GPU figures need a CUDA device.")
    images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    peak = peak_flops(torch.cuda.get_device_name(device)) if on_gpu else None
    step_flops_per_image = flops_per_image(args.backbone, images, args.batch_size, device)
    rows = {}
    for name in ("sslbook", "conventional"):
        model, optimizer = make_model(args.backbone, device, args.compile)
        steps = (sslbook_steps(model, optimizer, images, args.batch_size, device) if name == "sslbook" else
                 conventional_steps(model, optimizer, images, args.batch_size, device, args.workers))
        with autocast_networks(model, AUTOCAST_DTYPES[choose_precision("auto", device)]):  # as the loop
            rows[name] = measure(steps, args.steps, args.warmup, args.batch_size, device)
        rows[name]["achieved_flops"] = rows[name]["images_per_second"] * step_flops_per_image
        steps.close()
    print(f"{'pipeline':<13} {'images/s':>10} {'s/epoch':>9} {'peak GiB':>9} {'TFLOP/s':>8} {'of peak':>8}")
    for name, row in rows.items():
        memory = f"{row['peak_memory_gib']:.2f}" if row["peak_memory_gib"] is not None else "-"
        fraction = f"{row['achieved_flops'] / peak:.1%}" if peak else "unknown"
        print(f"{name:<13} {row['images_per_second']:>10.0f} {row['seconds_per_epoch']:>9.1f} {memory:>9} "
              f"{row['achieved_flops'] / 1e12:>8.2f} {fraction:>8}")
    ratio = rows["sslbook"]["images_per_second"] / rows["conventional"]["images_per_second"]
    print(f"ratio sslbook / conventional ({args.workers} workers): {ratio:.2f}x")
    record = {"hardware": hardware(), "torch": torch.__version__, "settings": vars(args) | {"out": None},
              "flops_per_image": step_flops_per_image, "peak_bf16_flops": peak, "pipelines": rows, "ratio": ratio}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"pipeline-{'gpu' if on_gpu else 'cpu'}-{args.backbone}.json"
        path.write_text(json.dumps(record, indent=2, default=str))
        print(f"wrote {path}")
    return record


if __name__ == "__main__":
    main()
