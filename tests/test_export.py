"""`sslbook export` writes a checkpoint's encoder, which loads back (and into torchvision) with the same features."""
import json
import sys

import pytest
import torch
from torch import nn

from sslbook import __main__ as cli
from sslbook import registry, runs
from sslbook.__main__ import main
from sslbook.data import ImageData
from sslbook.export import load_encoder, read_export, to_torchvision_resnet18, torchvision_resnet18_weights
from sslbook.networks import CIFAR_MEAN, CIFAR_STD
from sslbook.profiles import Profile, choose_profile
from sslbook.train import load_checkpoint, save_atomically

safetensors = pytest.importorskip("safetensors", reason="the export extra (safetensors) is not installed")


def tiny_data(n=64):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return ImageData(images, torch.arange(n) % 10, [f"class {k}" for k in range(10)])


def sample_images(n=6):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def method_in_checkpoint(path):
    """The method a checkpoint holds, rebuilt the way `sslbook eval` rebuilds it."""
    state = load_checkpoint(path)
    metadata = state["metadata"]
    entry = registry.get(metadata["method"])
    profile = choose_profile(metadata["profile"], verbose=False)
    method = entry.build(profile, tiny_data(), **{**entry.settings_in(profile), **metadata["settings"]})
    method.load_state_dict(state["method"])
    return method.eval()


def save_untrained_checkpoint(run, path):
    """A checkpoint as `sslbook train` writes it, of a run that trained no step (its weights as built)."""
    metadata = {"method": run.name, "profile": run.profile.name, "settings": run.settings,
                "fingerprint": run.fingerprint, "description": run.description}
    save_atomically({"method": run.method.state_dict(), "epoch": 0, "metadata": metadata}, path)


@pytest.fixture
def trained_checkpoint(tmp_path, monkeypatch, capsys):
    """SimCLR in the quick profile, trained by the command line for two steps on 64 random images."""
    monkeypatch.setattr(Profile, "load_data", lambda self, root=None, seed=0: (tiny_data(), tiny_data()))
    monkeypatch.setattr(cli, "evaluate", lambda *args: dict.fromkeys(("knn", "linear", "alignment", "uniformity"), 0.0))
    out = tmp_path / "run"
    assert main(["train", "simclr", "--profile", "quick", "--epochs", "1", "--batch-size", "32", "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    return out / "checkpoint.pt"


@pytest.mark.parametrize("file_format", ["safetensors", "torch"])
def test_a_trained_small_cnn_exports_and_loads_back_with_the_same_features(trained_checkpoint, file_format, capsys):
    out = trained_checkpoint.parent / f"encoder.{file_format}"
    assert main(["export", str(trained_checkpoint), "--out", str(out), "--format", file_format]) == 0
    printed = json.loads(capsys.readouterr().out)  # standard output is the metadata alone
    weights, metadata = read_export(out)
    assert printed == metadata
    assert (metadata["method"], metadata["profile"], metadata["epoch"]) == ("simclr", "quick", 1)
    assert metadata["architecture"] == "small_cnn"
    assert metadata["architecture_options"] == {"width": 16, "feature_dim": 128}
    assert metadata["feature_dim"] == 128 and metadata["settings"]["temperature"] == 0.5
    preprocessing = metadata["preprocessing"]
    assert preprocessing["input_size"] == 32 and preprocessing["value_range"] == [0.0, 1.0]
    assert preprocessing["normalised_by_the_encoder"] is True
    assert preprocessing["mean"] == pytest.approx(CIFAR_MEAN) and preprocessing["std"] == pytest.approx(CIFAR_STD)
    if file_format == "torch":
        assert set(torch.load(out, weights_only=True)) == {"state_dict", "metadata"}
    trained = method_in_checkpoint(trained_checkpoint).encoder
    assert weights.keys() == trained.state_dict().keys()
    images = sample_images()
    with torch.no_grad():
        assert torch.equal(load_encoder(out)(images), trained(images))


def test_a_resnet18_export_gives_torchvision_the_same_features(tmp_path, capsys):
    run = runs.method_run("simclr", choose_profile("full", verbose=False), tiny_data())
    generator = torch.Generator().manual_seed(2)
    for module in run.encoder.modules():  # batch-norm statistics and affine terms unlike any fresh network's
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 2.0),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -0.2, 0.2)):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
    run.method.to(memory_format=torch.channels_last)  # as training leaves it
    save_untrained_checkpoint(run, tmp_path / "checkpoint.pt")
    out = tmp_path / "encoder.safetensors"
    assert main(["export", str(tmp_path / "checkpoint.pt"), "--out", str(out)]) == 0
    weights, metadata = read_export(out)
    assert (metadata["architecture"], metadata["architecture_options"], metadata["feature_dim"]) == \
        ("resnet18", {}, 512)
    images = sample_images()
    ours = run.encoder.eval()
    with torch.no_grad():
        expected = ours(images)
        loaded = load_encoder(out).to(memory_format=torch.channels_last)  # the same convolution algorithms
        assert torch.equal(loaded(images), expected)
        mean, std = (torch.tensor(metadata["preprocessing"][name]).view(1, 3, 1, 1) for name in ("mean", "std"))
        theirs = to_torchvision_resnet18(weights)
        torch.testing.assert_close(theirs((images - mean) / std), expected, rtol=1e-5, atol=1e-5)
        assert to_torchvision_resnet18(weights, num_classes=10)((images - mean) / std).shape == (6, 10)
    assert isinstance(theirs.maxpool, nn.Identity) and theirs.conv1.stride == (1, 1)
    assert theirs.conv1.kernel_size == (3, 3)


def test_a_method_specific_encoder_is_exported_for_its_method_to_load(tmp_path):
    run = runs.method_run("mae", choose_profile("quick", verbose=False), tiny_data())
    save_untrained_checkpoint(run, tmp_path / "checkpoint.pt")
    out = tmp_path / "mae.pt"
    assert main(["export", str(tmp_path / "checkpoint.pt"), "--out", str(out), "--format", "torch"]) == 0
    weights, metadata = read_export(out)
    assert metadata["architecture"] == "mae encoder" and metadata["feature_dim"] is None
    with pytest.raises(ValueError, match="method-specific encoder of mae.*method_run"):
        load_encoder(out)
    torch.manual_seed(123)  # another initialisation, replaced by the exported weights
    rebuilt = runs.method_run("mae", choose_profile("quick", verbose=False), tiny_data(), seed=5).encoder
    rebuilt.load_state_dict(weights)
    images = sample_images()
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(images), run.encoder.eval()(images))
    with pytest.raises(ValueError, match="not CIFAR ResNet-18 weights"):
        torchvision_resnet18_weights(weights)


def test_bad_arguments_and_files_are_refused(trained_checkpoint, monkeypatch, capsys):
    folder = trained_checkpoint.parent
    assert main(["export", str(folder / "missing.pt"), "--out", str(folder / "e.safetensors")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(trained_checkpoint), "--out", str(folder / "e.onnx"), "--format", "onnx"])
    assert stopped.value.code == 2 and "invalid choice: 'onnx'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(trained_checkpoint)])
    assert stopped.value.code == 2 and "--out" in capsys.readouterr().err
    existing = folder / "existing.safetensors"
    existing.write_text("keep me")
    assert main(["export", str(trained_checkpoint), "--out", str(existing)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err and existing.read_text() == "keep me"
    assert main(["export", str(trained_checkpoint), "--out", str(existing), "--force"]) == 0
    assert read_export(existing)[1]["method"] == "simclr"
    assert main(["export", str(trained_checkpoint), "--out", str(trained_checkpoint), "--force"]) == 1
    assert "is the checkpoint itself" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not an exported sslbook encoder"):
        read_export(trained_checkpoint)  # a PyTorch file, but a checkpoint
    with pytest.raises(ValueError, match="neither a safetensors nor a PyTorch file"):
        read_export(folder / "simclr.json")
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if the export extra were not installed
    assert main(["export", str(trained_checkpoint), "--out", str(folder / "new.safetensors")]) == 1
    assert "pip install 'sslbook[export]'" in capsys.readouterr().err and not (folder / "new.safetensors").exists()
