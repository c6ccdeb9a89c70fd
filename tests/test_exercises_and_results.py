import json

import pytest
import torch

from sslbook import exercises, results


def test_check_close_says_what_is_wrong(capsys):
    exercises.check_close(torch.tensor(1.0), 1.0, "the answer")
    assert "correct: the answer" in capsys.readouterr().out
    with pytest.raises(exercises.ExerciseError, match="no answer yet"):
        exercises.check_close(None, 1.0, "the answer")
    with pytest.raises(exercises.ExerciseError, match="expected 1, got 2"):
        exercises.check_close(2.0, 1.0, "the answer")
    with pytest.raises(exercises.ExerciseError, match=r"expected shape \(3,\), got \(2,\)"):
        exercises.check_close(torch.zeros(2), torch.zeros(3), "the answer")
    with pytest.raises(exercises.ExerciseError, match="NaN"):
        exercises.check_close(float("nan"), 1.0, "the answer")
    with pytest.raises(exercises.ExerciseError, match="look at the sign"):
        exercises.check_true(False, "the answer", "look at the sign")


def test_results_are_saved_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    path = results.save_result("simclr", "quick", {"knn": 40.0}, epochs=3)
    record = json.loads(path.read_text())
    assert record["knn"] == 40.0 and record["epochs"] == 3 and record["profile"] == "quick" and record["hardware"]
    assert results.load_results("quick")["simclr"]["knn"] == 40.0
    assert results.reference_result("simclr") is None
    results.save_result("simclr", "full", {"knn": 85.0})
    assert results.reference_result("simclr")["knn"] == 85.0
