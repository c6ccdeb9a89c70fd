"""``python -m sslbook sweep``: a method's chapter run over samples and seeds, and the chapters'
reference sections that show it."""
import json

import pytest
import torch

from sslbook import chapter, runs, sweep
from sslbook.data import ImageData
from sslbook.profiles import Profile, choose_profile
from sslbook.results import RESULTS_ENV
from sslbook.runs import CHECKPOINTS_ENV


def data_of_sample(seed: int, n: int = 256) -> ImageData:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return ImageData(images, torch.arange(n) % 10, [f"class {k}" for k in range(10)])


def test_a_sweep_trains_each_sample_with_its_seed_and_summarises_the_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    monkeypatch.setattr(Profile, "load_data", lambda self, root=None, seed=0: (data_of_sample(seed), data_of_sample(99)))
    built = []

    def short_run(name, profile, train_data, **overrides):
        run = runs.method_run(name, profile, train_data, batch_size=64, max_steps=1, **overrides)
        built.append((overrides["seed"], run.data.images[0, 0, 0, 0].item(), run.fingerprint))
        return run

    monkeypatch.setattr(sweep, "method_run", short_run)
    record = sweep.sweep_method("simclr", choose_profile("quick", verbose=False), samples=2)
    assert [seed for seed, _, _ in built] == [0, 1]
    assert [pixel for _, pixel, _ in built] == [data_of_sample(s).images[0, 0, 0, 0].item() for s in (0, 1)]
    assert len({fingerprint for _, _, fingerprint in built}) == 2
    knn = [row["knn"] for row in record["runs"]]
    assert record["summary"]["knn"] == {"mean": sum(knn) / 2, "min": min(knn), "max": max(knn)}
    assert all(row["knn_gain"] == row["knn"] - row["random_init_knn"] for row in record["runs"])
    saved = json.loads((tmp_path / "results" / "sweep-quick" / "simclr.json").read_text())
    assert saved == sweep.load_sweep("simclr", "quick") and saved["samples"] == 2
    section = chapter.reference_results("simclr", asserted=("knn_gain", 5)).data
    lowest = record["summary"]["knn_gain"]["min"]
    assert f"the lowest of the sweep's runs was {lowest:.1f} ({lowest - 5:+.1f} points of room)" in section
    assert "| lightly | kNN | 84.8 |" in section and "full profile (GPU):** not run yet" in section


def test_without_a_sweep_the_reference_section_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path))
    section = chapter.reference_results("dae").data  # a method with no published row either
    assert "**Published:** none recorded here" in section
    assert "`python -m sslbook sweep dae --profile quick` writes one" in section
    assert "| Gidaris et al. 2018 | VOC 2007 detection mAP | 54.4 |" in chapter.reference_results("rotation").data


def test_the_sweep_command_names_a_bad_method_or_count(capsys):
    from sslbook.__main__ import main

    for argv, message in ((["sweep", "simclrr"], "unknown method 'simclrr'"),
                          (["sweep", "simclr", "--samples", "0"], "expected a whole number, at least 1, got '0'")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
