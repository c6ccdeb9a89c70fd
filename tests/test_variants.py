"""Retrain-a-variant exercises: ``chapter.train_variant`` changes only what it is asked to, and
``exercises.check_variant`` accepts exactly such a variant, trained to the end, with its own scores."""
import dataclasses
import json

import pytest

from sslbook import chapter, exercises, runs, sweep
from sslbook.profiles import choose_profile
from test_runs import tiny_data

TINY = dict(epochs=1, batch_size=32)


@pytest.fixture
def chapter_run(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.CHECKPOINTS_ENV, str(tmp_path))
    run = runs.method_run("simclr", choose_profile("quick", verbose=False), tiny_data(256), **TINY)
    run.load_or_train(progress=False)
    return run


def test_a_variant_changes_only_the_named_setting_and_is_loaded_when_trained_before(chapter_run, capsys):
    test_data = tiny_data(32)
    variant = chapter.train_variant(chapter_run, test_data, temperature=0.2)
    assert "training" in capsys.readouterr().out
    assert variant.run.settings == {**chapter_run.settings, "temperature": 0.2}
    assert variant.run.config == chapter_run.config  # the epochs too: the chapter's budget
    assert variant.run.fingerprint != chapter_run.fingerprint
    assert len(variant.history.steps) == 8  # 256 images, batch 32, one epoch
    assert variant.scores == chapter.evaluate_once(variant.run.encoder, chapter_run.data, test_data)
    assert variant.baseline_scores == chapter.evaluate_once(chapter_run.encoder, chapter_run.data, test_data)
    again = chapter.train_variant(chapter_run, test_data, temperature=0.2)
    assert "Loading the saved run" in capsys.readouterr().out
    assert again.history.steps == variant.history.steps and again.scores == variant.scores
    text = variant.comparison().data
    assert "`temperature=0.2`" in text and "`temperature=0.5`" in text
    assert f"{variant.scores['knn']:.1f}% kNN" in text and f"{variant.baseline_scores['knn']:.1f}%" in text


def test_a_variant_must_change_something(chapter_run):
    with pytest.raises(ValueError, match="at least one setting"):
        chapter.train_variant(chapter_run, tiny_data(32))
    with pytest.raises(ValueError, match="temperature=0.5: the chapter's run has that already"):
        chapter.train_variant(chapter_run, tiny_data(32), temperature=0.5)
    with pytest.raises(ValueError, match="not a setting of simclr"):
        chapter.train_variant(chapter_run, tiny_data(32), tempreature=0.2)


def test_the_check_accepts_the_asked_variant_and_nothing_else(chapter_run):
    variant = chapter.train_variant(chapter_run, tiny_data(32), temperature=0.2)
    exercises.check_variant(variant, chapter_run, "the variant", temperature=0.2)
    with pytest.raises(exercises.ExerciseError, match="no answer yet"):
        exercises.check_variant(..., chapter_run, "the variant", temperature=0.2)
    with pytest.raises(exercises.ExerciseError, match="differs in temperature=0.2"):
        exercises.check_variant(variant, chapter_run, "the variant", temperature=0.1)
    other = chapter.train_variant(chapter_run, tiny_data(32), temperature=0.2, lr=1e-3)
    with pytest.raises(exercises.ExerciseError, match="differs in lr=0.001"):
        exercises.check_variant(other, chapter_run, "the variant", temperature=0.2)
    typed_in = dataclasses.replace(variant, scores={**variant.scores, "knn": variant.scores["knn"] + 5})
    with pytest.raises(exercises.ExerciseError, match="scores of the variant are not those"):
        exercises.check_variant(typed_in, chapter_run, "the variant", temperature=0.2)
    cut_short = dataclasses.replace(variant, history=dataclasses.replace(variant.history,
                                                                         steps=variant.history.steps[:1]))
    with pytest.raises(exercises.ExerciseError, match="trained 1 of its 8 steps"):
        exercises.check_variant(cut_short, chapter_run, "the variant", temperature=0.2)


def test_the_margin_is_the_spread_of_the_recorded_sweep(tmp_path, monkeypatch):
    recorded = json.loads((sweep.sweep_folder("quick") / "simclr.json").read_text())
    knn = [run_["knn"] for run_ in recorded["runs"]]
    assert chapter.variant_margin("simclr", "quick") == max(chapter.VARIANT_MARGIN, round(max(knn) - min(knn), 1))
    assert chapter.variant_margin("simclr", "no-such-profile") == chapter.VARIANT_MARGIN
