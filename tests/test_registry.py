"""The registry covers every method module; each entry builds, takes a training step and encodes images."""
import importlib
import math
import inspect
import pkgutil

import pytest
import torch

import sslbook.methods
from sslbook import registry
from sslbook.runs import method_run, published_results
from sslbook.classroom import toc_entries
from sslbook.data import ImageData
from sslbook.evaluate import extract_features
from sslbook.profiles import choose_profile
from sslbook.train import Batch, TrainConfig, train

N_TRAINING_IMAGES = 128  # Exemplar-CNN's quick profile cuts its 128 seed patches from as many images


def method_modules() -> set[str]:
    """The modules of ``sslbook.methods`` that define a method: a class with ``training_loss``."""
    modules = set()
    for module_info in pkgutil.iter_modules(sslbook.methods.__path__):
        module = importlib.import_module(f"{sslbook.methods.__name__}.{module_info.name}")
        if any(cls.__module__ == module.__name__ and hasattr(cls, "training_loss")
               for _, cls in inspect.getmembers(module, inspect.isclass)):
            modules.add(module.__name__)
    return modules


@pytest.fixture(scope="module")
def train_data() -> ImageData:
    images = torch.randint(0, 256, (N_TRAINING_IMAGES, 3, 32, 32), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    return ImageData(images, torch.arange(N_TRAINING_IMAGES) % 10, [f"class {k}" for k in range(10)])


@pytest.fixture(scope="module")
def methods(train_data) -> dict:
    torch.manual_seed(0)
    profile = choose_profile("quick", verbose=False)
    return {name: method_run(name, profile, train_data).method for name in registry.METHODS}


def test_every_method_module_has_an_entry(methods):
    modules = method_modules()
    assert "sslbook.methods.simclr" in modules  # the search finds method classes at all
    assert modules - {type(method).__module__ for method in methods.values()} == set()


@pytest.mark.parametrize("name", sorted(registry.METHODS))
def test_entry_takes_a_training_step_and_encodes(name, methods, train_data):
    method = methods[name]
    indices = torch.arange(0, N_TRAINING_IMAGES, 16)  # 8 positions in the training set (memory banks use them)
    batch = Batch(train_data.images[indices], train_data.labels[indices], indices, torch.Generator().manual_seed(1))
    output = method.training_loss(batch)
    loss = output if isinstance(output, torch.Tensor) else output["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    features = extract_features(method.encoder, torch.rand(4, 3, 32, 32))
    assert features.ndim == 2 and len(features) == 4 and torch.isfinite(features).all()


@pytest.mark.parametrize("profile_name", ["quick", "full"])
def test_every_entry_builds_in_every_profile(profile_name, train_data):
    profile = choose_profile(profile_name, verbose=False)
    for name, entry in registry.METHODS.items():
        assert set(entry.settings) == {"quick", "full"} and set(entry.training) <= {"quick", "full"}, name
        assert entry.settings_in(choose_profile("gpu", verbose=False)) == entry.settings["full"], name
        profile.train_config(**entry.training_in(profile))  # raises on an unknown or invalid setting
    for name in ("simclr", "rotation", "mae"):  # one per family: the full profile's networks are large
        method_run(name, profile, train_data)


def test_entries_name_their_family_and_chapter_in_the_book_order():
    chapters = [f"{entry}.ipynb" for entry in toc_entries()]
    specs = list(registry.METHODS.values())
    assert {spec.family for spec in specs} == set(registry.FAMILIES)
    assert all(spec.chapter in chapters for spec in specs)
    self_supervised = [spec for spec in specs if spec.family != "reference"]
    assert [chapters.index(spec.chapter) for spec in self_supervised] == sorted(
        chapters.index(spec.chapter) for spec in self_supervised)
    for spec in self_supervised:  # the family is the part of the book the chapter is in
        part = spec.chapter.split("/")[1]
        assert spec.family.startswith(part), (spec.title, spec.family, spec.chapter)


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_entry_trains_with_bf16_networks_as_on_a_gpu(name, train_data):
    """The GPU's mixed precision, run on the CPU: the networks in bf16, everything else in float32."""
    first_losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        method = method_run(name, choose_profile("quick", verbose=False), train_data).method
        config = TrainConfig(epochs=1, batch_size=32, max_steps=2, optimizer="adamw", lr=1e-3, precision=precision)
        history = train(method, train_data, config, device="cpu", progress=False)
        assert all(math.isfinite(loss) for loss in history.losses())
        first_losses[precision] = history.losses()[0]
    assert first_losses["bf16"] == pytest.approx(first_losses["fp32"], rel=1e-2)


def test_every_published_row_is_cited_by_its_chapter_s_reference_section():
    """Each published number names its source in references.bib, and the chapter's reference section
    (the Markdown cell before the one that shows it) cites that source."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    bibliography = set(re.findall(r"^@\w+\{([^,]+),", (root / "references.bib").read_text(), re.MULTILINE))
    unknown = set(published_results()) - set(registry.METHODS)
    assert not unknown, f"published.json names no method {sorted(unknown)}"
    for entry in registry.METHODS.values():
        if not entry.published:
            continue
        cells = json.loads((root / entry.chapter).read_text())["cells"]
        shown = next(i for i, cell in enumerate(cells)
                     if cell["cell_type"] == "code" and f'reference_results("{entry.name}"' in "".join(cell["source"]))
        cited = {key.strip() for role in re.findall(r"\{cite\}`([^`]+)`", "".join(cells[shown - 1]["source"]))
                 for key in role.split(",")}
        for row in entry.published:
            assert row.cite in bibliography, f"{entry.name}: {row.cite} is not in references.bib"
            assert row.cite in cited, f"{entry.chapter}: its reference section does not cite {row.cite}"
