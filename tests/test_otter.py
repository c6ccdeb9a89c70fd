"""Graded copies for otter-grader: the format, the hidden test, and a round trip through otter itself.

The round trip runs ``otter assign`` on the NCE chapter's otter copy (which runs its tests on the
solutions), then grades the solved (autograder) and the unsolved (student) notebooks locally with
``otter run``: full points and zero points.
"""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sslbook import classroom, exercises, losses
from sslbook.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "contrastive" / "nce.ipynb"


def source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_every_exercise_becomes_a_question_with_its_solution_marked_and_tests():
    for path in classroom.chapter_notebooks(ROOT):
        notebook = json.loads(path.read_text())
        n_exercises = sum(bool(classroom.EXERCISE.search(source(cell))) for cell in notebook["cells"]
                          if cell["cell_type"] == "markdown")
        otter = classroom.otter_copy(notebook, path.stem)["cells"]
        raw = [source(cell) for cell in otter if cell["cell_type"] == "raw"]
        assert raw[0].startswith("# ASSIGNMENT CONFIG") and f"name: {path.stem}" in raw[0]
        assert sum(text.startswith("# BEGIN QUESTION") for text in raw) == n_exercises, path
        for marker in ("# BEGIN SOLUTION", "# END SOLUTION", "# BEGIN TESTS", "# END TESTS", "# END QUESTION"):
            assert raw.count(marker) == n_exercises, (path, marker)
        assert not any("solution-start" in source(cell) for cell in otter), path  # no MyST solution left
        for cell in otter:
            if cell["id"].endswith(("-answer", "-public", "-hidden")):
                ast.parse(source(cell))  # every answer and test is valid Python
        assert any(cell["id"].endswith("-hidden") for cell in otter) or n_exercises == 0, path


def test_the_command_writes_one_otter_notebook_per_chapter(tmp_path, capsys):
    assert main(["classroom", "--format", "otter", "--out", str(tmp_path), "--book", str(ROOT)]) == 0
    written = sorted((tmp_path / "otter").rglob("*.ipynb"))
    assert len(written) == len(classroom.chapter_notebooks(ROOT))
    assert "otter-grader assignment notebooks" in capsys.readouterr().err


def test_own_implementation_refuses_the_library_answer_in_every_disguise():
    exercises.check_own_implementation(lambda z1, z2: (z1 * z2).sum(), "own")
    with pytest.raises(exercises.ExerciseError, match="comes from sslbook.losses"):
        exercises.check_own_implementation(losses.nt_xent, "imported", ("nt_xent",))
    namespace = {"losses": losses, "alias": losses.nt_xent}
    exec("def by_name(a, b):\n    return losses.nt_xent(a, b, 0.5)\n"
         "def by_alias(a, b):\n    return alias(a, b, 0.5)\n"
         "def nested(a, b):\n    return [losses.nt_xent(x, y, 0.5) for x, y in zip(a, b)]\n", namespace)
    for name in ("by_name", "by_alias", "nested"):
        with pytest.raises(exercises.ExerciseError, match="calls nt_xent from sslbook"):
            exercises.check_own_implementation(namespace[name], name, ("nt_xent",))
    with pytest.raises(exercises.ExerciseError, match="no answer yet"):
        exercises.check_own_implementation(None, "missing")


def otter_scores(results: Path) -> dict[str, float]:
    return {test["name"]: test["score"] for test in json.loads(results.read_text())["tests"] if "score" in test}


@pytest.mark.book_level
def test_otter_assigns_the_chapter_and_grades_solved_and_unsolved_copies(tmp_path):
    pytest.importorskip("otter", reason="otter-grader is in the otter extra: pip install -e '.[otter]'")
    otter = Path(sys.executable).parent / "otter"
    [master] = [path for path in classroom.write_copies(tmp_path / "copies", ROOT, "otter")
                if path.name == CHAPTER.name]
    dist = tmp_path / "dist"
    assigned = subprocess.run([str(otter), "assign", str(master), str(dist)], capture_output=True, text=True)
    assert assigned.returncode == 0, assigned.stdout[-3000:] + assigned.stderr[-3000:]
    [autograder] = (dist / "autograder").glob("*.zip")
    questions = [cell for cell in json.loads(master.read_text())["cells"]
                 if cell["cell_type"] == "raw" and source(cell).startswith("# BEGIN QUESTION")]
    for copy, expected in (("autograder", classroom.OTTER_POINTS), ("student", 0.0)):
        submission, results = tmp_path / f"{copy}.ipynb", tmp_path / f"results-{copy}"
        shutil.copy(dist / copy / CHAPTER.name, submission)
        results.mkdir()
        graded = subprocess.run([str(otter), "run", "-a", str(autograder), "-o", str(results), str(submission)],
                                capture_output=True, text=True)
        assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
        scores = otter_scores(results / "results.json")
        assert len(scores) == len(questions) >= 2
        assert set(scores.values()) == {expected}, (copy, scores)
