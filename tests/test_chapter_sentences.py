"""The sentences a chapter generates from its measurements say what the numbers say."""
import math

import pytest
import torch
from torch import nn

from sslbook import chapter, results
from sslbook.data import ImageData
from sslbook.paths import write_atomically


def test_gain_sentence_compares_each_gain_with_two_standard_errors():
    text = chapter.gain_sentence("M", {"knn": 33.0, "linear": 45.0}, {"knn": 30.0, "linear": 44.0}, 2000).data
    noise_knn, noise_linear = 200 * math.sqrt(0.3 * 0.7 / 2000), 200 * math.sqrt(0.44 * 0.56 / 2000)
    assert f"kNN +3.0 points (beyond two standard errors, ±{noise_knn:.1f})" in text
    assert f"linear-probe +1.0 points (within two standard errors, ±{noise_linear:.1f})" in text
    assert "on 2,000 test images" in text
    assert "beyond" in chapter.gain_sentence("M", {"knn": 26.0}, {"knn": 30.0}, 2000).data  # a loss counts too


def test_geometry_sentence_words_follow_the_numbers():
    baselines = {"random init": {"alignment": 0.2, "uniformity": -1.0}}
    better = chapter.geometry_sentence("M", {"alignment": 0.1, "uniformity": -2.0}, baselines).data
    assert "closer together" in better and "more uniformly" in better and "0.10 against 0.20" in better
    worse = chapter.geometry_sentence("M", {"alignment": 0.5, "uniformity": -0.5}, baselines).data
    assert "further apart" in worse and "less uniformly" in worse


class FirstPixels(nn.Module):
    """Features: the first four values of each image (a stand-in encoder with no parameters to train)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images):
        return self.scale * images.flatten(1)[:, :4]


def test_clusters_sentence_names_the_classes_that_gather():
    labels = torch.arange(60) % 3
    images = torch.rand(60, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    images.view(60, -1)[labels == 1, :4] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # class "b": one point
    data = ImageData((images * 255).to(torch.uint8), labels, ["a", "b", "c"])
    noise = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    text = chapter.clusters_sentence("M", FirstPixels(), noise, data, k=5, shown=1).data
    assert "gather best in M's features are b (100%)" in text
    assert "chance: 33% of the same class" in text


def test_recorded_experiments_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    assert results.recorded("sweep") is None
    path = results.save_recorded("sweep", {"sweep": {"0.5": {"knn": 30.0}}})
    assert path == tmp_path / "recorded" / "sweep.json"
    record = results.recorded("sweep")
    assert record["sweep"] == {"0.5": {"knn": 30.0}} and "hardware" in record and "torch" in record


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text("old")

    def fails_halfway(temporary):
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, fails_halfway)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["scores.json"]
    write_atomically(path, lambda temporary: temporary.write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_retrieval_counts_same_class_neighbours_over_all_test_images(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    labels = torch.arange(40) % 4
    images = torch.randint(0, 256, (40, 3, 2, 2), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images[:, 0] = 0
    images[:, 0].view(40, 4)[torch.arange(40), labels] = 255  # the first four values: the class, one-hot
    data = ImageData(images, labels, ["a", "b", "c", "d"])
    text = chapter.retrieval("M", FirstPixels(), nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), data, data,
                             n_queries=2, k=3).data
    assert "of each one's 3 nearest training images, 100% share its class in M's features" in text
    assert "chance: 25%" in text
