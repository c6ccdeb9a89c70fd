"""The GPU machine's check script runs its whole code path on tiny sizes (``--cpu-smoke``)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import gpu_check
from sslbook.data import DATA_ENV

CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS = 10, 50, 20  # what the smoke test draws per class


@pytest.fixture
def tiny_image_folder(tmp_path, monkeypatch):
    """Random 32x32 PNGs in ImageFolder layout, one more per class than the smoke test draws."""
    generator = np.random.default_rng(0)
    root = tmp_path / "data"
    for split, per_class in (("train", TRAIN_PER_CLASS + 1), ("test", TEST_PER_CLASS + 1)):
        for label in range(CLASSES):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for number in range(per_class):
                Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{number}.png")
    monkeypatch.setenv(DATA_ENV, str(root))
    return root


def test_the_cpu_smoke_run_records_hardware_data_pipeline_and_simclr(tiny_image_folder, tmp_path, capsys):
    out = tmp_path / "check" / "gpu-check.json"
    returned = gpu_check.main(["--cpu-smoke", "--out", str(out)])
    printed = capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" or torch.cuda.is_available()
    assert record["hardware"]["torch"] == torch.__version__ and record["hardware"]["summary"]
    assert record["data"] == {
        "root": str(tiny_image_folder), "layout": "ImageFolder (train/<class>/*, test/<class>/*)",
        "classes": [f"class{label}" for label in range(CLASSES)],
        "train_images_found": CLASSES * (TRAIN_PER_CLASS + 1), "test_images_found": CLASSES * (TEST_PER_CLASS + 1),
        "train_images": CLASSES * TRAIN_PER_CLASS, "test_images": CLASSES * TEST_PER_CLASS}
    pipelines = record["pipeline"]["pipelines"]
    assert record["pipeline"]["ratio"] == pytest.approx(pipelines["sslbook"]["images_per_second"]
                                                        / pipelines["conventional"]["images_per_second"])
    simclr = record["simclr"]
    assert np.isfinite(list(simclr["calibration_scores"].values())).all()
    for part, profile in (("sized", "quick-sized"), ("full", "quick")):
        run = simclr[part]
        assert run["profile"] == profile and run["batch_size"] == gpu_check.CPU_SMOKE.batch_size
        assert run["steps"] == run["max_steps"] <= gpu_check.CPU_SMOKE.max_steps
        assert run["max_steps"] * simclr["seconds_per_step"] <= run["budgeted_training_seconds"]
        assert all(np.isfinite(run[score]) for score in ("knn", "linear", "alignment", "uniformity"))
        assert 0 <= run["knn"] <= 100
    sized = simclr["sized"]
    assert sized["epochs_of_recipe"] == sized["estimate"]["epochs"] >= 1
    assert sized["sustained_tflops"] == pytest.approx(
        sized["estimate"]["flops_per_image"] * sized["images_per_second"] / 1e12)
    assert "sized to 10 minutes on a T4" in record["printed"]
    assert record["printed"] in printed and "kNN" in record["printed"] and "ratio sslbook" in record["printed"]
    assert returned["simclr"] == simclr and returned["printed"] == record["printed"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_the_full_check_says_to_use_the_smoke_run(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main([])
    assert "--cpu-smoke runs its code path on a CPU" in capsys.readouterr().err
