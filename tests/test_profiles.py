import pytest

from sslbook import profiles


def test_profile_is_chosen_by_hardware_then_overridden(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: False)
    quick = profiles.choose_profile(verbose=False)
    assert quick.name == "quick" and quick.reason == "no GPU was found" and quick.backbone == "small_cnn"
    monkeypatch.setenv(profiles.PROFILE_ENV, "full")
    full = profiles.choose_profile(verbose=False)
    assert full.name == "full" and profiles.PROFILE_ENV in full.reason and full.backbone == "resnet18"
    assert profiles.choose_profile("quick", verbose=False).reason == "chosen by argument"


def test_a_gpu_selects_the_gpu_profile_sized_to_the_budget_with_the_full_recipe(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: True)
    gpu = profiles.choose_profile(verbose=False)
    assert gpu.name == "gpu" and gpu.reason == "a GPU was found" and gpu.device.type == "cuda"
    assert gpu.sized and gpu.settings_of == "full" and gpu.backbone == "resnet18" and gpu.train_per_class is None
    assert gpu.train_config() == profiles.choose_profile("full", verbose=False).train_config()
    assert "the epochs that fit 10 minutes on a T4" in gpu.describe()


def test_profile_prints_what_ran_and_why(capsys, monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    profiles.choose_profile("quick")
    printed = capsys.readouterr().out
    assert "Profile: quick (chosen by argument)" in printed and "SSLBOOK_PROFILE" in printed


def test_unknown_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown profile 'medium'"):
        profiles.choose_profile("medium")


def test_train_config_takes_overrides():
    profile = profiles.choose_profile("quick", verbose=False)
    config = profile.train_config(epochs=3)
    assert config.epochs == 3 and config.batch_size == profile.batch_size
