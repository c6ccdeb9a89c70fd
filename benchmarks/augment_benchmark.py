"""Batched SimCLR views (sslbook.augment) against torchvision's per-image pipeline.

Both make 2 views of every image of a few thousand real CIFAR-10 images with
SimCLR's CIFAR recipe (Chen et al., 2020): random resized crop (0.08, 1),
flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2.

- batched: ``make_views`` on uint8 batches of 512, on --device.
- per-image: a torchvision.transforms.v2 Compose applied image by image inside
  a Dataset, through a DataLoader (batch 512), with 0 and with 2 workers.

Throughput is view-images per second (2 per input image), the median over
--repeats passes after one warm-up pass. Thread settings are torch's defaults.

Run from the repository root:  python -m benchmarks.augment_benchmark [--device cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from sslbook.augment import make_views, simclr_cifar
from sslbook.data import DATA_ENV, balanced_subset, load_image_folder

BATCH_SIZE = 512
N_VIEWS = 2


def default_train_folder() -> Path:
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]) / "train"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-subset" / "train"


def torchvision_simclr_view() -> v2.Compose:
    """The conventional per-image SimCLR CIFAR view."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(32, scale=(0.08, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


class TwoViewDataset(Dataset):
    """Image i -> two independent views of it, made one image at a time."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.view = torchvision_simclr_view()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return self.view(image), self.view(image)


def time_passes(one_pass, repeats: int) -> list[float]:
    """Seconds per pass, after one untimed warm-up pass."""
    one_pass()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass()
        seconds.append(time.perf_counter() - start)
    return seconds


def batched_pass(images: torch.Tensor, device: torch.device, generator: torch.Generator):
    recipe = simclr_cifar()

    def one_pass() -> None:
        for batch in images.split(BATCH_SIZE):
            views = make_views(batch.to(device, non_blocking=True), recipe, N_VIEWS, generator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        assert views[0].dtype == torch.float32

    return one_pass


def per_image_pass(images: torch.Tensor, num_workers: int):
    loader = DataLoader(
        TwoViewDataset(images),
        batch_size=BATCH_SIZE,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )

    def one_pass() -> None:
        for first, second in loader:
            assert first.dtype == torch.float32 and second.shape == first.shape

    return one_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device of the batched path: cpu or cuda")
    parser.add_argument("--images", type=int, default=2560, help="input images per pass (256 per class by default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per pipeline; the median is reported")
    parser.add_argument(
        "--data", type=Path, default=None, help="ImageFolder split folder (default: $SSLBOOK_DATA/train)"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch sees no CUDA device; run with --device cpu")
    folder = args.data or default_train_folder()
    data = load_image_folder(folder)
    per_class = args.images // len(data.classes)
    images = balanced_subset(data, per_class=per_class, seed=0).images
    n_view_images = N_VIEWS * len(images)

    print(f"{len(images)} CIFAR images from {folder}, {N_VIEWS} views each, batches of {BATCH_SIZE}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    generator = torch.Generator(device=device).manual_seed(0)
    pipelines = [
        ("batched make_views", f"{device.type}", batched_pass(images, device, generator)),
        ("per-image torchvision", "DataLoader, 0 workers", per_image_pass(images, 0)),
        ("per-image torchvision", "DataLoader, 2 workers", per_image_pass(images, 2)),
    ]
    rows = []
    for name, where, one_pass in pipelines:
        seconds = statistics.median(time_passes(one_pass, args.repeats))
        rows.append((name, where, n_view_images / seconds, seconds))

    print(f"\n{'pipeline':<24}{'where':<24}{'view-images/s':>15}{'s/pass':>9}")
    for name, where, rate, seconds in rows:
        print(f"{name:<24}{where:<24}{rate:>15,.0f}{seconds:>9.3f}")
    batched_rate = rows[0][2]
    for name, where, rate, _ in rows[1:]:
        print(f"batched / {name} ({where}): {batched_rate / rate:.1f}x")


if __name__ == "__main__":
    main()
