import math

import pytest
import torch
from torch import nn

from sslbook import budget, runs
from sslbook.data import ImageData
from sslbook.profiles import choose_profile


class LinearOnPixels(nn.Module):
    """A method whose step is one matrix product: 2 d k FLOPs forward and 2 d k for the weights'
    gradient per image (the images need no gradient)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.encoder = nn.Linear(3 * 8 * 8, classes, bias=False)

    def training_loss(self, batch):
        logits = self.encoder(batch.images.float().flatten(1) / 255)
        return nn.functional.cross_entropy(logits, batch.labels)


def images(n: int) -> ImageData:
    generator = torch.Generator().manual_seed(0)
    return ImageData(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator),
                     torch.arange(n) % 10, [str(k) for k in range(10)])


def test_a_step_is_counted_in_closed_form_on_a_copy():
    method = LinearOnPixels()
    before = method.encoder.weight.detach().clone()
    flops = budget.step_flops_per_image(method, images(40), batch_size=16)
    assert flops == 4 * (3 * 8 * 8) * 10
    assert method.encoder.weight.grad is None and torch.equal(method.encoder.weight, before)
    with pytest.raises(ValueError, match="needs 32 training images, got 20"):
        budget.step_flops_per_image(method, images(20))


def test_the_epochs_that_fit_the_budget_on_the_reference_gpu():
    sustained = budget.LISTED_TFLOPS[budget.REFERENCE_GPU] * 1e12 * budget.SUSTAINED_FRACTION
    per_image = 2 * 60 * sustained / 50_000  # one epoch of 50,000 images: 2 minutes on the T4
    fitted = budget.epochs_that_fit(per_image, 50_000, most=200, gpu_name="NVIDIA H200")
    assert fitted.epochs == 5 and math.isclose(fitted.minutes_on_reference, 10.0)
    assert math.isclose(fitted.minutes_here, 10.0 * 65 / 989)
    assert budget.epochs_that_fit(per_image, 50_000, most=3).epochs == 3
    assert budget.epochs_that_fit(per_image * 100, 50_000, most=200).epochs == 1  # never none
    described = fitted.describe("simclr")
    assert "5 epochs of 50,000 images" in described and "on this NVIDIA H200, about 0.7 minutes" in described
    unknown = budget.epochs_that_fit(per_image, 50_000, most=200, gpu_name="Some New GPU")
    assert unknown.minutes_here is None and "not in sslbook.budget.LISTED_TFLOPS" in unknown.describe("simclr")
    with pytest.raises(ValueError, match="positive FLOPs"):
        budget.epochs_that_fit(0.0, 50_000, most=200)


@pytest.mark.parametrize("name, listed", [("Tesla T4", 65.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                          ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA RTX A6000", 154.8),
                                          ("NVIDIA GeForce RTX 4090", None)])
def test_gpus_are_looked_up_by_the_name_torch_reports(name, listed):
    assert budget.listed_tflops(name) == listed


def test_a_sized_run_takes_the_epochs_that_fit_unless_epochs_are_given(monkeypatch, capsys):
    quick = choose_profile("quick", verbose=False)
    sized = type(quick)(**{**quick.__dict__, "sized": True, "name": "sized", "recipe": "quick"})
    data = images(64)
    data = ImageData(torch.nn.functional.interpolate(data.images.float(), size=32).to(torch.uint8), data.labels,
                     data.classes)
    monkeypatch.setattr(budget, "BUDGET_MINUTES", 1e-9)  # far less than one epoch: the floor of 1
    run = runs.method_run("rotation", sized, data)
    assert run.config.epochs == 1 and run.config.warmup_epochs == pytest.approx(0.1)
    assert "rotation: 1 epoch of 64 images" in capsys.readouterr().out
    again = runs.method_run("rotation", sized, data)
    assert again.fingerprint == run.fingerprint  # counting the step changes nothing the run is made of
    assert runs.method_run("rotation", sized, data, epochs=4).config.epochs == 4


def test_side_runs_take_a_share_of_the_main_run_outside_the_quick_profile():
    from types import SimpleNamespace

    from sslbook import chapter
    from sslbook.train import TrainConfig

    def run_in(profile_name):
        return SimpleNamespace(profile=choose_profile(profile_name, verbose=False), data=range(50_000),
                               config=TrainConfig(epochs=9, batch_size=512))

    assert chapter.side_steps(run_in("quick"), quick_steps=40) == 40
    assert chapter.side_steps(run_in("gpu"), quick_steps=40) == round(0.1 * 9 * 97)
    assert chapter.side_steps(run_in("full"), quick_steps=40, share=0.5) == round(0.5 * 9 * 97)
