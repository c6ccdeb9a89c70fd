"""The training loop's precision by device, its reads of the device, logs, checkpoint cadence and Ctrl-C."""
import json
import math
import signal
import sys

import pytest
import torch
from torch import nn

from sslbook import evaluate as evaluate_module, train as train_module
from sslbook.augment import simclr_cifar
from sslbook.__main__ import main
from sslbook.data import ImageData
from sslbook.methods.simclr import SimCLR
from sslbook.networks import SmallCNN
from sslbook.profiles import Profile
from sslbook.run_log import RunLog
from sslbook.train import READ_EVERY, History, TrainConfig, choose_precision, train
from test_train import CONFIG, tiny_data, tiny_simclr


def test_auto_precision_follows_the_gpu_and_explicit_choices_are_kept():
    assert choose_precision("auto", "cuda", capability=(7, 5)) == "fp16"  # T4: no native bfloat16
    assert choose_precision("auto", "cuda", capability=(8, 0)) == "bf16"  # A100
    assert choose_precision("auto", "cuda:1", capability=(9, 0)) == "bf16"  # H100
    assert choose_precision("auto", "cpu") == "fp32"
    assert choose_precision("fp32", "cuda", capability=(7, 5)) == "fp32"
    assert choose_precision("fp16", "cuda", capability=(8, 0)) == "fp16"
    assert choose_precision("bf16", "cpu") == "bf16" and choose_precision("fp16", "cpu") == "fp16"
    with pytest.raises(ValueError, match=r"compute capability 7\.5\) has no native bfloat16.*precision='fp16'"):
        choose_precision("bf16", "cuda", capability=(7, 5))
    with pytest.raises(ValueError, match="precision must be one of auto, bf16, fp16, fp32"):
        choose_precision("fp8", "cpu")


def crash_at(crash_epoch):
    class Crash(Exception):
        pass

    def on_epoch_end(method, epoch):
        if epoch == crash_epoch:
            raise Crash
        return {"knn": 10.0 * epoch}

    return Crash, on_epoch_end


def test_fp16_trains_with_loss_scaling_and_resumes_with_the_scalers_state(tmp_path):
    config = TrainConfig(**{**vars(CONFIG), "epochs": 2, "precision": "fp16"})
    data, uninterrupted = tiny_data(), tiny_simclr()
    full_history = train(uninterrupted, data, config, device="cpu", progress=False)
    fp32_history = train(tiny_simclr(), data, TrainConfig(**{**vars(config), "precision": "fp32", "max_steps": 1}),
                         device="cpu", progress=False)
    assert full_history.precision == "fp16" and all(math.isfinite(loss) for loss in full_history.losses())
    assert full_history.losses()[0] != fp32_history.losses()[0]  # fp16 did run
    assert full_history.losses()[0] == pytest.approx(fp32_history.losses()[0], rel=1e-2)  # same weights and views

    checkpoint = tmp_path / "run.pt"
    Crash, on_epoch_end = crash_at(1)
    with pytest.raises(Crash):
        train(tiny_simclr(), data, config, device="cpu", checkpoint=checkpoint, checkpoint_every=1, progress=False,
              on_epoch_end=on_epoch_end)
    scaler_state = torch.load(checkpoint, weights_only=True)["scaler"]
    assert scaler_state["scale"] < 2.0 ** 16  # float16 gradients overflowed: the scale backed off from its start
    resumed = tiny_simclr(seed=99)
    train(resumed, data, config, device="cpu", checkpoint=checkpoint, progress=False)
    for (name, expected), actual in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name


class LinearMethod(nn.Module):
    """A loss on a linear map of the pixels that logs a tensor and a float, and keeps what it returned."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(3 * 32 * 32, 4)
        self.returned = []

    def training_loss(self, batch):
        features = self.encoder(batch.images.flatten(1).float() / 255)
        loss, spread = features.pow(2).mean(), features.std()
        self.returned.append((loss.detach().clone(), spread.detach().clone()))
        return {"loss": loss, "spread": spread, "constant": 2}


def test_steps_are_read_from_the_device_in_blocks_and_keep_every_value(tmp_path, monkeypatch):
    reads, waits = [], []
    real_tolist = torch.Tensor.tolist

    def counted_tolist(tensor):
        reads.append(tensor.numel())
        return real_tolist(tensor)

    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    for name in ("item", "__bool__", "__float__"):  # each would wait for the device
        monkeypatch.setattr(torch.Tensor, name, lambda tensor, _name=name: waits.append(_name) or 0)
    method, steps_per_epoch = LinearMethod(), READ_EVERY + 5
    config = TrainConfig(epochs=2, batch_size=2, lr=0.01, seed=1)
    history = train(method, tiny_data(2 * steps_per_epoch), config, device="cpu", progress=False)
    monkeypatch.undo()
    assert waits == []
    # per epoch: one read after READ_EVERY steps, one of the rest at its end; two values a step (loss, spread)
    assert reads == [2 * READ_EVERY, 2 * 5] * 2
    assert len(history.steps) == 2 * steps_per_epoch
    for step, (entry, (loss, spread)) in enumerate(zip(history.steps, method.returned)):
        assert list(entry) == ["step", "epoch", "loss", "lr", "spread", "constant"]
        assert entry["step"] == step and entry["epoch"] == step // steps_per_epoch
        assert entry["loss"] == loss.item() and entry["spread"] == spread.item() and entry["constant"] == 2.0
        assert all(type(entry[key]) is float for key in ("loss", "lr", "spread", "constant"))


class ExplodesAt(LinearMethod):
    def __init__(self, bad_step):
        super().__init__()
        self.bad_step = bad_step

    def training_loss(self, batch):
        output = super().training_loss(batch)
        if len(self.returned) - 1 == self.bad_step:
            output["loss"] = output["loss"] * float("inf")
        return output


def test_a_loss_that_is_not_finite_is_named_by_its_step_and_the_log_stops_before_it(tmp_path):
    bad_step, log = READ_EVERY + 3, tmp_path / "log.jsonl"
    with pytest.raises(FloatingPointError, match=rf"inf at step {bad_step} \(epoch 0\).*float16"):
        train(ExplodesAt(bad_step), tiny_data(64), TrainConfig(epochs=1, batch_size=2, lr=0.01), device="cpu",
              progress=False, log=log)
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["step"] for entry in logged] == list(range(bad_step))


def log_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_log_has_every_step_and_epoch_once_after_a_resume(tmp_path):
    data, log, checkpoint = tiny_data(), tmp_path / "log.jsonl", tmp_path / "run.pt"
    Crash, on_epoch_end = crash_at(2)
    with pytest.raises(Crash):  # epoch 2's steps are logged; the checkpoint holds epochs 0 and 1
        train(tiny_simclr(), data, CONFIG, device="cpu", checkpoint=checkpoint, checkpoint_every=2, progress=False,
              on_epoch_end=on_epoch_end, log=log)
    assert [entry["step"] for entry in log_lines(log) if entry["kind"] == "step"] == list(range(9))
    history = train(tiny_simclr(seed=7), data, CONFIG, device="cpu", checkpoint=checkpoint, progress=False,
                    on_epoch_end=lambda method, epoch: {"knn": 10.0 * epoch}, log=log)
    lines = log_lines(log)
    assert [entry for entry in lines if entry["kind"] == "step"] == [{"kind": "step", **s} for s in history.steps]
    epochs = [entry for entry in lines if entry["kind"] == "epoch"]
    assert [(entry["epoch"], entry["knn"]) for entry in epochs] == [(0, 0.0), (1, 10.0), (2, 20.0)]
    assert all(entry["seconds"] > 0 for entry in epochs)
    assert [entry["kind"] for entry in lines] == ["step"] * 3 + ["epoch"] + ["step"] * 3 + ["epoch"] + \
        ["step"] * 3 + ["epoch"]


def test_a_log_cut_off_mid_line_is_cut_back_to_its_whole_lines(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"kind": "step", "step": 0, "epoch": 0, "loss": 1.0}\n{"kind": "step", "step": 1, "ep')
    RunLog(log, steps_done=1).close()
    assert log_lines(log) == [{"kind": "step", "step": 0, "epoch": 0, "loss": 1.0}]
    assert [path.name for path in tmp_path.iterdir()] == ["log.jsonl"]


def test_checkpoints_are_written_every_so_many_epochs_and_at_the_end(tmp_path, monkeypatch):
    saved = []
    real_save = train_module.save_atomically
    monkeypatch.setattr(train_module, "save_atomically",
                        lambda state, path: saved.append((state["epoch"], state["batch"])) or real_save(state, path))
    config = TrainConfig(epochs=5, batch_size=4, lr=0.01)
    train(LinearMethod(), tiny_data(8), config, device="cpu", checkpoint=tmp_path / "every2.pt", checkpoint_every=2,
          progress=False)
    assert saved == [(2, 0), (4, 0), (5, 0)]
    saved.clear()
    train(LinearMethod(), tiny_data(8), config, device="cpu", checkpoint=tmp_path / "default.pt", progress=False)
    assert saved == [(5, 0)]
    with pytest.raises(ValueError, match="checkpoint_every must be a positive int, got 0"):
        train(LinearMethod(), tiny_data(8), config, device="cpu", checkpoint=tmp_path / "x.pt", checkpoint_every=0)


class InterruptedSimCLR(SimCLR):
    """``tiny_simclr()`` whose ``interrupt_at``-th step receives a Ctrl-C (SIGINT) halfway through."""

    def __init__(self, interrupt_at):
        torch.manual_seed(0)
        super().__init__(SmallCNN(width=4, feature_dim=16), projection_dim=8, hidden_dim=16, recipe=simclr_cifar())
        self.interrupt_at, self.calls = interrupt_at, 0

    def training_loss(self, batch):
        self.calls += 1
        if self.calls == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)
        return super().training_loss(batch)


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for the test, as in a terminal or a Jupyter kernel: something earlier
    in the full CI run (seen only there, with the browser test running) leaves another one installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_saves_at_the_end_of_its_step_and_the_resumed_run_matches_an_uninterrupted_one(
        tmp_path, python_sigint_handler):
    data, checkpoint, log = tiny_data(), tmp_path / "run.pt", tmp_path / "log.jsonl"
    config = TrainConfig(**{**vars(CONFIG), "epochs": 2})
    uninterrupted = tiny_simclr()
    full_history = train(uninterrupted, data, config, device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):  # 3 steps an epoch: the 5th step is epoch 1's second
        train(InterruptedSimCLR(interrupt_at=5), data, config, device="cpu", checkpoint=checkpoint,
              progress=False, log=log)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back
    state = torch.load(checkpoint, weights_only=True)
    assert (state["epoch"], state["batch"], len(state["history"]["steps"])) == (1, 2, 5)
    resumed = tiny_simclr(seed=99)
    history = train(resumed, data, config, device="cpu", checkpoint=checkpoint, progress=False, log=log)
    for (name, expected), actual in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(expected, actual), name
    assert history.steps == full_history.steps
    assert [entry["step"] for entry in log_lines(log) if entry["kind"] == "step"] == list(range(6))


def test_seconds_count_the_steps_only_not_the_evaluations_nor_the_checkpoints(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock[0])

    class OneSecondSteps(LinearMethod):
        def training_loss(self, batch):
            clock[0] += 1.0
            return super().training_loss(batch)

    real_save = torch.save

    def slow_save(state, path):
        clock[0] += 1000.0
        real_save(state, path)

    def slow_evaluation(method, epoch):
        clock[0] += 1000.0
        return {"knn": [50.0, 70.0, 70.0, 60.0][epoch]}

    monkeypatch.setattr(train_module.torch, "save", slow_save)
    history = train(OneSecondSteps(), tiny_data(8), TrainConfig(epochs=4, batch_size=4), device="cpu",
                    checkpoint=tmp_path / "run.pt", checkpoint_every=1, on_epoch_end=slow_evaluation, progress=False)
    assert history.seconds == len(history.steps) == 8 and not history.includes_compile
    assert (history.best_epoch, history.best_knn) == (1, 70.0)  # the first of the best
    assert (History().best_epoch, History().best_knn) == (None, None)


def tiny_profile_data(monkeypatch, n=256):
    """The quick profile on ``n`` random images (kNN takes 200 neighbours), no linear probe (slow on a CPU)."""
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    tiny = ImageData(images, torch.arange(n) % 10, [f"class {k}" for k in range(10)])
    monkeypatch.setattr(Profile, "load_data", lambda self, root=None, seed=0: (tiny, tiny))
    monkeypatch.setattr(evaluate_module, "linear_probe", lambda *args, **options: 0.0)


def test_the_command_line_logs_and_records_the_best_epoch(tmp_path, monkeypatch, capsys):
    tiny_profile_data(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", "simclr", "--profile", "quick", "--epochs", "3", "--batch-size", "128", "--knn-every", "2",
                 "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    lines = log_lines(out / "log.jsonl")
    epochs = [entry for entry in lines if entry["kind"] == "epoch"]
    assert [entry["epoch"] for entry in epochs] == [0, 1, 2] and "knn" not in epochs[0]  # epochs 2 and 3 (the last)
    scored = {entry["epoch"]: entry["knn"] for entry in epochs if "knn" in entry}
    best = max(scored, key=scored.get)
    assert (printed["best_epoch"], printed["best_knn"]) == (best, scored[best])
    record = json.loads((out / "simclr.json").read_text())
    assert (record["best_epoch"], record["best_knn"], record["precision"]) == (best, scored[best], "fp32")
    assert len([entry for entry in lines if entry["kind"] == "step"]) == 3 * 2
    with pytest.raises(SystemExit) as stopped:
        main(["train", "simclr", "--checkpoint-every", "0", "--out", str(out)])
    assert stopped.value.code == 2 and "at least 1, got '0'" in capsys.readouterr().err


def test_tensorboard_without_its_package_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: importing it fails
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["train", "simclr", "--tensorboard", "--out", str(tmp_path)]) == 2
    assert 'pip install "sslbook[tensorboard]"' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # stopped before training


def test_tensorboard_event_files_hold_the_steps(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_profile_data(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", "simclr", "--profile", "quick", "--epochs", "1", "--batch-size", "128", "--tensorboard",
                 "--out", str(out), "--no-progress"]) == 0
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    losses = [entry["loss"] for entry in log_lines(out / "log.jsonl") if entry["kind"] == "step"]
    assert [event.step for event in events.Scalars("train/loss")] == [0, 1]
    assert [event.value for event in events.Scalars("train/loss")] == pytest.approx(losses)
    assert [event.step for event in events.Scalars("epoch/seconds")] == [2]
