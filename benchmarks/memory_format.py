"""One training step of each method with its networks in contiguous (NCHW) and channels-last memory format.

    python benchmarks/memory_format.py [--methods simclr,rotation,...] [--steps N]

The training loop puts every method in channels-last format on every device; this prints, side by
side in one run, the median step time of both formats on this machine and their ratio (below 1:
channels-last is faster). Quick profile, a batch of 256 real or random images, after two warm-up steps.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from sslbook.data import ImageData
from sslbook.profiles import choose_profile
from sslbook.registry import METHODS
from sslbook.runs import method_run
from sslbook.train import Batch


def step_seconds(name: str, data: ImageData, channels_last: bool, steps: int) -> float:
    profile = choose_profile("quick", verbose=False)
    method = method_run(name, profile, data).method.train()
    if channels_last:
        method.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3)
    batch = Batch(data.images, data.labels, torch.arange(len(data)), torch.Generator().manual_seed(1))
    durations = []
    for step in range(steps + 2):
        started = time.perf_counter()
        output = method.training_loss(batch)
        loss = output if isinstance(output, torch.Tensor) else output["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if hasattr(method, "after_step"):
            method.after_step(0.5)
        if step >= 2:
            durations.append(time.perf_counter() - started)
    return statistics.median(durations)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(name for name in METHODS if name != "supervised"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (args.batch_size, 3, 32, 32), dtype=torch.uint8, generator=generator),
                     torch.arange(args.batch_size) % 10, [f"class {i}" for i in range(10)])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"median of {args.steps} steps")
    print(f"{'method':20s} {'NCHW ms':>9s} {'channels-last ms':>17s} {'ratio':>6s}")
    for name in args.methods.split(","):
        contiguous = step_seconds(name, data, False, args.steps)
        channels_last = step_seconds(name, data, True, args.steps)
        print(f"{name:20s} {contiguous * 1000:9.0f} {channels_last * 1000:17.0f} {channels_last / contiguous:6.2f}",
              flush=True)


if __name__ == "__main__":
    main()
