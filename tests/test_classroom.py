"""Student and instructor copies: no solution survives in a student copy, and the checks still work."""
import json
import os
import re

import pytest

from sslbook import classroom, paths
from sslbook.__main__ import main

NOTEBOOKS = classroom.chapter_notebooks()


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _solution_code(notebook):
    """The source of every code cell inside a solution, taken from the original notebook."""
    return [_source(notebook["cells"][index]) for first, last in classroom.solution_spans(notebook)
            for index in range(first, last + 1) if notebook["cells"][index]["cell_type"] == "code"]


def test_every_chapter_has_solutions_to_remove():
    assert len(NOTEBOOKS) >= 20
    for path in NOTEBOOKS:
        assert len(classroom.solution_spans(json.loads(path.read_text()))) >= 2, path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_solution_survives_in_the_student_copy(path):
    notebook = json.loads(path.read_text())
    student = classroom.student_copy(notebook)
    sources = [_source(cell) for cell in student["cells"]]
    text = "\n".join(sources)
    assert "solution-start" not in text and "solution-end" not in text
    for solution in _solution_code(notebook):
        assert solution not in sources
    # the exercises, the stubs and the checks stay
    original = [_source(cell) for cell in notebook["cells"]]
    for marker in ("{exercise}", "# your code here", "exercises.check"):
        assert sum(marker in source for source in sources[1:]) == sum(marker in source for source in original), marker
    assert sources[0] == classroom.STUDENT_BANNER


@pytest.mark.parametrize("path", NOTEBOOKS[:3], ids=lambda path: path.stem)
def test_the_instructor_copy_keeps_every_cell(path):
    notebook = json.loads(path.read_text())
    instructor = classroom.instructor_copy(notebook)
    assert [_source(cell) for cell in instructor["cells"][1:]] == [_source(cell) for cell in notebook["cells"]]


def _notebook(*markdown_and_code):
    return {"cells": [{"cell_type": kind, "metadata": {}, "source": text, **({"outputs": [], "execution_count": 1}
                                                                              if kind == "code" else {})}
                      for kind, text in markdown_and_code], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_unbalanced_solution_markers_are_refused():
    start, end = ("markdown", ":::{solution-start} x\n:::"), ("markdown", ":::{solution-end}\n:::")
    with pytest.raises(ValueError, match="never ends"):
        classroom.student_copy(_notebook(start, ("code", "answer = 1")))
    with pytest.raises(ValueError, match="without a 'solution-start'"):
        classroom.student_copy(_notebook(("code", "answer = 1"), end))
    with pytest.raises(ValueError, match="starts before"):
        classroom.student_copy(_notebook(start, start, end))
    assert [_source(cell) for cell in classroom.student_copy(_notebook(start, ("code", "answer = 1"), end,
                                                                       ("code", "check()")))["cells"][1:]] \
        == ["check()"]


def test_the_command_writes_both_copies(tmp_path, capsys):
    assert main(["classroom", "--out", str(tmp_path)]) == 0
    assert f"wrote {len(NOTEBOOKS)} student notebooks" in capsys.readouterr().err
    students = sorted((tmp_path / "student").rglob("*.ipynb"))
    instructors = sorted((tmp_path / "instructor").rglob("*.ipynb"))
    assert len(students) == len(instructors) == len(NOTEBOOKS)
    for path in students:
        assert "solution-start" not in path.read_text()


def _execute(path, cwd):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    errors = {}
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors[index] = (output["ename"], output["evalue"], cell.source)
    return notebook, errors


@pytest.mark.book_level
@pytest.mark.skipif(not os.environ.get("SSLBOOK_DATA"), reason="needs the CIFAR-10 data named by SSLBOOK_DATA")
@pytest.mark.parametrize("chapter", ["contrastive/simclr", "pretext/counting"])
def test_a_student_copy_of_a_chapter_runs(chapter, tmp_path, monkeypatch):
    """Unsolved, exactly the check cells fail, each with a message; solved, nothing fails.

    The chapter trains as a student's run would, or loads the checkpoint the book's own run saved;
    the counting chapter's exercises include one that retrains a variant of the chapter's run.
    """
    monkeypatch.setenv("SSLBOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SSLBOOK_CHECKPOINTS", str(paths.checkpoints_dir()))  # the book's own runs
    monkeypatch.setenv("MPLBACKEND", "Agg")
    classroom.write_copies(tmp_path)
    student_path = tmp_path / "student" / "book" / f"{chapter}.ipynb"

    student, errors = _execute(student_path, student_path.parent)
    check_cells = {index for index, cell in enumerate(student.cells)
                   if cell.cell_type == "code" and "exercises.check" in cell.source}
    assert set(errors) == check_cells, {index: errors[index][:2] for index in errors}
    for ename, evalue, _ in errors.values():
        assert ename == "ExerciseError"
        assert re.search(r"returns None|no answer yet|not right yet", evalue), evalue

    # the solutions put back: the instructor copy (it loads the same checkpoint)
    instructor_path = tmp_path / "instructor" / "book" / f"{chapter}.ipynb"
    _, errors = _execute(instructor_path, instructor_path.parent)
    assert errors == {}
