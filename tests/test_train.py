import math

import pytest
import torch
from torch import nn

from sslbook.augment import simclr_cifar
from sslbook.data import ImageData
from sslbook.methods.simclr import SimCLR
from sslbook.networks import SmallCNN
from sslbook import train as train_module
from sslbook.train import TrainConfig, learning_rate_factor, train


def tiny_data(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return ImageData(images, torch.arange(n) % 4, ["a", "b", "c", "d"])


def tiny_simclr(seed=0):
    torch.manual_seed(seed)
    return SimCLR(SmallCNN(width=4, feature_dim=16), projection_dim=8, hidden_dim=16, recipe=simclr_cifar())


CONFIG = TrainConfig(epochs=3, batch_size=16, optimizer="sgd", lr=0.05, warmup_epochs=1, seed=3)


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path):
    data = tiny_data()
    uninterrupted = tiny_simclr()
    full_history = train(uninterrupted, data, CONFIG, device="cpu", progress=False)

    class Crash(Exception):
        pass

    def crash_after_second_epoch(method, epoch):
        if epoch == 1:
            raise Crash
        return {}

    checkpoint = tmp_path / "run.pt"
    with pytest.raises(Crash):
        train(tiny_simclr(), data, CONFIG, device="cpu", checkpoint=checkpoint, checkpoint_every=1, progress=False,
              on_epoch_end=crash_after_second_epoch)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    resumed = tiny_simclr(seed=99)  # different initial weights: everything must come from the checkpoint
    resumed_history = train(resumed, data, CONFIG, device="cpu", checkpoint=checkpoint, progress=False)
    for (name, expected), actual in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name
    assert [s["loss"] for s in resumed_history.steps] == pytest.approx([s["loss"] for s in full_history.steps])
    # a finished checkpoint is loaded, not trained again
    again = tiny_simclr(seed=5)
    history = train(again, data, CONFIG, device="cpu", checkpoint=checkpoint, progress=False)
    assert len(history.steps) == len(full_history.steps)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), resumed.state_dict().values()))


def test_history_counts_steps_images_and_epoch_metrics():
    history = train(tiny_simclr(), tiny_data(), CONFIG, device="cpu", progress=False,
                    on_epoch_end=lambda method, epoch: {"knn": float(epoch)})
    assert len(history.steps) == 3 * 3 and history.images_seen == 9 * 16
    assert [e["knn"] for e in history.epochs] == [0.0, 1.0, 2.0]
    assert all(math.isfinite(loss) for loss in history.losses())


class ExplodingMethod(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.calls = 0

    def training_loss(self, batch):
        self.calls += 1
        return self.weight.sum() * (float("nan") if self.calls == 3 else 1.0)


def test_a_nan_loss_stops_the_run_naming_the_step_and_likely_cause():
    with pytest.raises(FloatingPointError, match=r"nan at step 2 \(epoch 0\).*temperature too low"):
        train(ExplodingMethod(), tiny_data(), TrainConfig(epochs=1, batch_size=8), device="cpu", progress=False)


def test_bad_configurations_are_rejected():
    with pytest.raises(ValueError, match="larger than the 48 training images"):
        train(tiny_simclr(), tiny_data(), TrainConfig(epochs=1, batch_size=64), device="cpu", progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        TrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="optimizer must be"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(TypeError, match="no training_loss"):
        train(nn.Linear(2, 2), tiny_data(), CONFIG, device="cpu", progress=False)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    assert learning_rate_factor(0, 100, 10) == pytest.approx(0.1)
    assert learning_rate_factor(9, 100, 10) == pytest.approx(1.0)
    assert learning_rate_factor(10, 100, 10) == pytest.approx(1.0)
    assert learning_rate_factor(55, 100, 10) == pytest.approx(0.5)
    assert learning_rate_factor(100, 100, 10) == pytest.approx(0.0)


def test_max_steps_cuts_the_run_short():
    history = train(tiny_simclr(), tiny_data(), TrainConfig(epochs=3, batch_size=16, max_steps=4),
                    device="cpu", progress=False)
    assert len(history.steps) == 4


def test_compiled_training_matches_eager_and_keeps_parameter_names(tmp_path):
    """torch.compile changes how the networks run, not what they compute or how checkpoints look."""
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.05, seed=3, max_steps=2)
    eager, compiled = tiny_simclr(), tiny_simclr()
    eager_history = train(eager, tiny_data(), config, device="cpu", progress=False)
    compiled_history = train(compiled, tiny_data(), TrainConfig(**{**vars(config), "compile": True}), device="cpu",
                             progress=False, checkpoint=tmp_path / "compiled.pt")
    assert [s["loss"] for s in compiled_history.steps] == pytest.approx([s["loss"] for s in eager_history.steps],
                                                                      rel=1e-4)
    assert all(network._compiled_call_impl is not None for network in compiled.children())
    assert compiled_history.includes_compile and not eager_history.includes_compile  # its seconds hold compile time
    saved = torch.load(tmp_path / "compiled.pt", weights_only=True)["method"]
    assert list(saved) == list(eager.state_dict())
    for name, value in eager.state_dict().items():  # compiled kernels sum in another order: float32 noise
        torch.testing.assert_close(saved[name], value, rtol=1e-3, atol=1e-4)


class TwoNetworksAndABank(nn.Module):
    """A method with two networks, a parameterless module and a loss computed outside the networks."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(8, 4)])
        self.bank = nn.Module()  # no parameters: not a network
        self.bank.register_buffer("features", torch.randn(5, 4))
        self.seen = []

    def forward(self, x):
        z = self.heads[0](self.encoder(x))
        self.seen.append((z.dtype, torch.is_autocast_enabled("cpu"), (z @ self.bank.features.T).dtype))
        return z


def test_bf16_networks_compute_in_bf16_hand_back_float32_and_are_restored():
    method = TwoNetworksAndABank()
    inner_dtypes = []
    method.encoder[0].register_forward_hook(lambda module, args, output: inner_dtypes.append(output.dtype))
    x = torch.randn(3, 8)
    with train_module.bf16_networks(method):
        method(x)
    assert inner_dtypes == [torch.bfloat16]  # the network computed in bf16
    # the method saw float32 outputs, and its own code ran outside autocast, in float32
    assert method.seen == [(torch.float32, False, torch.float32)]
    assert [network for network in train_module.networks_of(method)] == [method.encoder, method.heads[0]]
    method(x)
    assert inner_dtypes[-1] == torch.float32 and "forward" not in vars(method.encoder)
    with pytest.raises(RuntimeError, match="inside"), train_module.bf16_networks(method):
        raise RuntimeError("inside")
    assert "forward" not in vars(method.encoder) and "forward" not in vars(method.heads[0])


def test_bf16_training_on_the_cpu_follows_float32_closely():
    losses = {}
    for precision in ("fp32", "bf16"):
        history = train(tiny_simclr(), tiny_data(), TrainConfig(epochs=1, batch_size=16, precision=precision),
                        device="cpu", progress=False)
        losses[precision] = history.losses()
    assert losses["bf16"][0] != losses["fp32"][0]  # bf16 did run
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=1e-2)  # same weights, same views
    assert all(math.isfinite(loss) for loss in losses["bf16"])
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp16, fp32"):
        TrainConfig(precision="fp8")


def test_an_interrupted_checkpoint_write_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    data, checkpoint = tiny_data(), tmp_path / "run.pt"
    one_epoch = TrainConfig(epochs=1, batch_size=16, seed=3)
    train(tiny_simclr(), data, one_epoch, device="cpu", checkpoint=checkpoint, progress=False)
    saved = checkpoint.read_bytes()

    def killed_during_the_write(state, path):
        with open(path, "wb") as file:
            file.write(b"the first bytes of a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module.torch, "save", killed_during_the_write)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_simclr(), data, TrainConfig(epochs=2, batch_size=16, seed=3), device="cpu",
              checkpoint=checkpoint, progress=False)
    assert checkpoint.read_bytes() == saved
    assert train_module.load_checkpoint(checkpoint)["epoch"] == 1
    assert [path.name for path in tmp_path.iterdir()] == ["run.pt"]  # no partial file left behind
