"""Host-device syncs in one training step of every method, counted on the CPU.

A GPU runs ahead of Python as long as Python asks it for no value. An op whose output size
depends on the data (nonzero, indexing with a boolean mask, unique) or that hands a value to
Python (``.item()``, ``bool()``, ``float()``, ``torch.equal``) makes the host wait until every
queued kernel has finished, and the GPU then idles while Python prepares the next kernels.
``SyncCounter`` counts those ops with a ``TorchDispatchMode``; on the CPU they cost nothing
special, so the count is taken (and tested, in tests/test_host_syncs.py) without a GPU.
Device-to-host copies (``.cpu()``, ``.tolist()``, ``.numpy()``) are invisible in a CPU run
and are not counted.

One step is the method's ``training_loss``, the backward pass and ``after_step`` (BYOL's EMA,
for instance), on a batch of random images; the optimiser step is the training loop's, not the
method's.

    python -m benchmarks.host_syncs
"""
from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sslbook import registry
from sslbook.data import ImageData
from sslbook.profiles import choose_profile
from sslbook.runs import method_run
from sslbook.train import Batch

aten = torch.ops.aten

ALWAYS_SYNC = frozenset({
    aten.nonzero,  # the output size is the number of True values
    aten._local_scalar_dense,  # .item(), bool(), float(), int() of a tensor
    aten.is_nonzero,
    aten.equal,
    aten.allclose,
    aten.masked_select,
    aten._unique, aten._unique2, aten.unique_dim, aten.unique_consecutive, aten.unique_dim_consecutive,
    aten.bincount,  # the output size is the largest value
    # A tensor made from Python numbers (torch.tensor, new_tensor): a GPU gets it through a blocking copy,
    # which first waits for the device's queue. A CPU run cannot tell whether it goes to the device.
    aten.lift_fresh,
})
MASK_INDEXED = frozenset({aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_})


def _is_mask(index) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def causes_sync(func, args: tuple, kwargs: dict) -> bool:
    """Whether the aten op ``func`` called with these arguments makes a GPU host wait for the device."""
    packet = func.overloadpacket
    if packet in ALWAYS_SYNC:
        return True
    if packet in MASK_INDEXED:  # x[mask], x[mask] = v: the mask becomes indices through nonzero
        return any(_is_mask(index) for index in args[1])
    if packet is aten.repeat_interleave:  # the output size is the sum of the repeats, unless given
        return kwargs.get("output_size") is None
    return False


class SyncCounter(TorchDispatchMode):
    """Counts, by op name, the aten ops run inside it that would make a GPU host wait for the device."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if causes_sync(func, args, kwargs):
            self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **kwargs)


def tiny_data(n: int = 128, size: int = 32) -> ImageData:
    """n random uint8 images of 10 classes (a step's syncs do not depend on the pixels)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)
    return ImageData(images, torch.arange(n) % 10, [f"class {k}" for k in range(10)])


def step_syncs(method: torch.nn.Module, data: ImageData, batch_size: int = 32) -> Counter[str]:
    """The sync-causing ops of one step of ``method`` on the first ``batch_size`` images of ``data``."""
    method.train()
    indices = torch.arange(batch_size)
    batch = Batch(data.images[indices], data.labels[indices], indices, torch.Generator().manual_seed(1))
    with SyncCounter() as counter:
        output = method.training_loss(batch)
        loss = output if isinstance(output, torch.Tensor) else output["loss"]
        loss.backward()
        if hasattr(method, "after_step"):
            method.after_step(0.5)
    return counter.counts


def method_step_syncs(name: str, data: ImageData | None = None) -> Counter[str]:
    """``step_syncs`` of method ``name`` as the quick profile builds it."""
    data = data if data is not None else tiny_data()
    return step_syncs(method_run(name, choose_profile("quick", verbose=False), data).method, data)


def main() -> None:
    data = tiny_data()
    print("Sync-causing ops in one training step (training_loss, backward, after_step), quick profile, "
          "batch of 32 on the CPU\n")
    print(f"{'method':<22}{'syncs':>6}  ops")
    for name in registry.METHODS:
        counts = method_step_syncs(name, data)
        ops = ", ".join(f"{op} {count}" for op, count in counts.most_common())
        print(f"{name:<22}{sum(counts.values()):>6}  {ops}")


if __name__ == "__main__":
    main()
