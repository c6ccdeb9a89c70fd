"""Label efficiency: probes that see only a few labelled images per class, against the same encoder
trained from scratch on those images, and the few-label probe every evaluation reports."""
import pytest
import torch

from sslbook import chapter, evaluate, runs
from sslbook.data import balanced_indices, balanced_subset
from sslbook.profiles import choose_profile
from test_runs import tiny_data


def test_balanced_indices_draw_per_class_images_of_every_class_and_make_balanced_subset():
    data = tiny_data(300)
    indices = balanced_indices(data.labels, data.classes, 7, seed=3)
    assert torch.bincount(data.labels[indices], minlength=10).tolist() == [7] * 10
    assert len(set(indices.tolist())) == 70
    assert torch.equal(balanced_subset(data, 7, seed=3).images, data.images[indices])
    assert not torch.equal(indices, balanced_indices(data.labels, data.classes, 7, seed=4))
    with pytest.raises(ValueError, match="fewer than the 31 asked for"):
        balanced_indices(data.labels, data.classes, 31)


def test_the_few_label_probe_fits_each_draw_on_its_labelled_images_standardised_by_all(monkeypatch):
    torch.manual_seed(0)
    labels = torch.arange(400) % 10
    features, test_features = torch.randn(400, 16), torch.randn(50, 16)
    calls = []

    def probe(train_features, train_labels, test_features_, test_labels, standardise_with=None):
        calls.append((train_features, train_labels, standardise_with))
        return float(len(calls))

    monkeypatch.setattr(evaluate, "linear_probe", probe)
    accuracies = evaluate.few_label_probe(features, labels, test_features, labels[:50], 3, draws=4)
    assert accuracies == [1.0, 2.0, 3.0, 4.0]
    for draw, (train_features, train_labels, standardise_with) in enumerate(calls):
        chosen = balanced_indices(labels, [str(k) for k in range(10)], 3, seed=draw)
        assert torch.equal(train_features, features[chosen]) and torch.equal(train_labels, labels[chosen])
        assert standardise_with is features
    assert not torch.equal(calls[0][0], calls[1][0])


def test_features_that_are_the_labels_need_one_label_per_class():
    labels = torch.arange(200) % 10
    one_hot = torch.nn.functional.one_hot(labels, 10).float() + 0.01 * torch.randn(200, 10)
    assert evaluate.few_label_probe(one_hot, labels, one_hot, labels, 1, draws=2) == [100.0, 100.0]


def test_evaluate_reports_the_ten_label_probe_only_where_every_class_has_ten_images():
    encoder = evaluate.PixelEncoder()
    scores = evaluate.evaluate(encoder, tiny_data(300), tiny_data(40))
    labels, train = tiny_data(300).labels, tiny_data(300)
    features, test_features = evaluate.extract_features(encoder, train.images), evaluate.extract_features(
        encoder, tiny_data(40).images)
    expected = evaluate.few_label_probe(features, labels, test_features, tiny_data(40).labels, evaluate.FEW_LABELS)
    assert scores[f"linear_{evaluate.FEW_LABELS}"] == pytest.approx(sum(expected) / len(expected))
    assert f"linear_{evaluate.FEW_LABELS}" not in evaluate.evaluate(encoder, tiny_data(90), tiny_data(40), k=5)


def test_the_scratch_run_trains_the_few_images_for_the_steps_of_the_run_on_all():
    profile, data = choose_profile("quick", verbose=False), tiny_data(1000)
    full = runs.method_run("supervised", profile, data)
    steps = full.config.epochs * (len(data) // full.config.batch_size)
    for per_class in (1, 10, 30):
        run, labelled = chapter.scratch_run(full, per_class)
        chosen = balanced_indices(data.labels, data.classes, per_class, seed=0)
        assert torch.equal(labelled.images, data.images[chosen]) and run.data is labelled
        batch = min(full.config.batch_size, len(labelled))
        assert run.config.batch_size == batch
        assert steps <= run.config.epochs * (len(labelled) // batch) < steps + len(labelled) // batch
        assert run.config.warmup_epochs * (len(labelled) // batch) == pytest.approx(
            full.config.warmup_epochs * (len(data) // full.config.batch_size))
        assert {key: value for key, value in run.settings.items()} == full.settings


def test_label_efficiency_measures_every_curve_at_every_count(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.CHECKPOINTS_ENV, str(tmp_path))
    profile, train, test = choose_profile("quick", verbose=False), tiny_data(300), tiny_data(60)
    encoder = runs.method_run("simclr", profile, train, epochs=1).encoder
    curves = chapter.label_efficiency("SimCLR", encoder, profile, train, test, per_class=(1, 5))
    assert list(curves) == ["SimCLR", "random init", "supervised on those labels only"]
    for name, curve in curves.items():
        assert sorted(curve) == [1, 5, 30]
        assert all(0 <= value <= 100 for values in curve.values() for value in values)
    assert len(curves["SimCLR"][5]) == evaluate.FEW_LABEL_DRAWS and len(curves["supervised on those labels only"][5]) == 1
    features = evaluate.extract_features(encoder, train.images)
    assert curves["SimCLR"][30] == [evaluate.linear_probe(features, train.labels, evaluate.extract_features(
        encoder, test.images), test.labels)]
    table = chapter.label_efficiency_table(curves).data
    assert "| 5 |" in table and "| 30 |" in table
