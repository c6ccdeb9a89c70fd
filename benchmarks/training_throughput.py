"""SimCLR training throughput (images per second) for both backbones, on this machine.

    python benchmarks/training_throughput.py [--device cpu|cuda] [--steps N]

Each step makes two views of a batch with sslbook.augment, encodes and projects them, and takes
an optimiser step: the same work as a step of the SimCLR chapter. The figures are medians over the
measured steps, after warm-up steps.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sslbook.augment import simclr_cifar
from sslbook.methods.simclr import SimCLR
from sslbook.mixed_precision import AUTOCAST_DTYPES, autocast_networks, choose_precision
from sslbook.networks import make_encoder
from sslbook.train import Batch


def measure(backbone: str, batch_size: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    method = SimCLR(make_encoder(backbone), recipe=simclr_cifar()).to(device)
    on_gpu = device.type == "cuda"
    method.to(memory_format=torch.channels_last)  # as the training loop
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    batch = Batch(images, torch.zeros(batch_size, dtype=torch.long, device=device),
                  torch.arange(batch_size, device=device), generator)
    durations = []
    with autocast_networks(method, AUTOCAST_DTYPES[choose_precision("auto", device)]):  # as the loop
        for step in range(steps + 2):
            if on_gpu:
                torch.cuda.synchronize()
            started = time.perf_counter()
            loss = method.training_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_gpu:
                torch.cuda.synchronize()
            if step >= 2:  # warm-up steps are not measured
                durations.append(time.perf_counter() - started)
    seconds = statistics.median(durations)
    return {"backbone": backbone, "batch": batch_size, "seconds per step": seconds,
            "images per second": batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"SimCLR training throughput on {device} ({torch.get_num_threads()} CPU threads, torch {torch.__version__})")
    print(f"{'backbone':<10} {'batch':>6} {'s/step':>8} {'images/s':>10}")
    for backbone, batch_size in (("small_cnn", 256), ("resnet18", 256 if device.type == "cuda" else 64)):
        row = measure(backbone, batch_size, args.steps, device)
        print(f"{row['backbone']:<10} {row['batch']:>6} {row['seconds per step']:>8.3f} {row['images per second']:>10.0f}")
    print("images per second counts source images; each is augmented into two views.")


if __name__ == "__main__":
    main()
