"""Student and instructor copies of the chapter notebooks.

Every exercise in the book has the same cells, in this order: the ``{exercise}`` text, a stub to
fill in (``...  # your code here``), the solution between ``{solution-start}`` and
``{solution-end}`` markdown cells, and a cell of automatic checks. A student copy drops the
solution (both markers and every cell between them) and keeps the stub and the checks, so the
checks fail with their message until the student's answer is right. An instructor copy keeps
everything. Both start with a cell that says which copy it is.

The otter format (``--format otter``) writes one otter-grader assignment notebook per chapter
instead: each exercise is a question worth ``OTTER_POINTS``, its solution marked so that
``otter assign`` gives the students the stub, its check cell a public test, and, where the stub
defines a function, a hidden test that passes the check again and finds the answer is the
student's own (defined in the notebook, calling none of the library functions the check compares
it with): a student cannot earn its points by importing the answer. The solutions' explanations go with the solutions, into otter's
autograder copy only.

    python -m sslbook classroom --out classroom     # writes classroom/student and classroom/instructor
    python -m sslbook classroom --format otter --out classroom   # writes classroom/otter
    otter assign classroom/otter/book/contrastive/nce.ipynb dist/nce   # then: otter run, otter grade
"""
from __future__ import annotations

import ast
import builtins
import copy
import json
import pkgutil
import re
from pathlib import Path

from .paths import book_folder

SOLUTION_START = re.compile(r"^\s*:{3,}\s*\{solution-start\}", re.MULTILINE)
SOLUTION_END = re.compile(r"^\s*:{3,}\s*\{solution-end\}", re.MULTILINE)
STUDENT_BANNER = ("> **Student copy.** The solutions have been removed. Fill in each cell marked "
                  "`# your code here`; the check cell after it says what is still wrong, or prints "
                  "`correct`.")
INSTRUCTOR_BANNER = ("> **Instructor copy.** Every solution is in place, between its `solution-start` and "
                     "`solution-end` cells; the student copy of this notebook has them removed.")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _banner(text: str) -> dict:
    return {"cell_type": "markdown", "id": "classroom-banner", "metadata": {}, "source": text}


def solution_spans(notebook: dict) -> list[tuple[int, int]]:
    """(first, last) cell indices of each solution, markers included.

    Raises ``ValueError`` for a ``solution-start`` without a matching ``solution-end``, since such a
    notebook would leak or lose cells.
    """
    spans, start = [], None
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = _source(cell)
        if SOLUTION_START.search(text):
            if start is not None:
                raise ValueError(f"cell {index}: a solution starts before the one at cell {start} ended; "
                                 "close it with a ':::{solution-end}' cell")
            start = index
        if SOLUTION_END.search(text):
            if start is None:
                raise ValueError(f"cell {index}: 'solution-end' without a 'solution-start' before it")
            spans.append((start, index))
            start = None
    if start is not None:
        raise ValueError(f"cell {start}: the solution never ends; add a ':::{{solution-end}}' cell after it")
    return spans


def student_copy(notebook: dict) -> dict:
    """The notebook without its solutions, outputs cleared, with the student banner first."""
    removed = {index for first, last in solution_spans(notebook) for index in range(first, last + 1)}
    student = copy.deepcopy(notebook)
    student["cells"] = [_banner(STUDENT_BANNER)] + [
        _cleared(cell) for index, cell in enumerate(student["cells"]) if index not in removed]
    return student


def instructor_copy(notebook: dict) -> dict:
    """The whole notebook, outputs cleared, with the instructor banner first."""
    solution_spans(notebook)  # refuse unbalanced markers here too
    instructor = copy.deepcopy(notebook)
    instructor["cells"] = [_banner(INSTRUCTOR_BANNER)] + [_cleared(cell) for cell in instructor["cells"]]
    return instructor


FORMATS = ("copies", "otter")
OTTER_POINTS = 2  # per exercise, shared by its tests
EXERCISE = re.compile(r"^\s*:{3,}\s*\{exercise\}", re.MULTILINE)
EXERCISE_LABEL = re.compile(r"^:label:\s*(\S+)", re.MULTILINE)
DEFINED_FUNCTION = re.compile(r"^def (\w+)\(", re.MULTILINE)


def _library_calls(code: str) -> set[str]:
    """The sslbook functions ``code`` calls as ``module.function(`` (the check helpers aside)."""
    from . import __path__ as package_path

    modules = [info.name for info in pkgutil.iter_modules(package_path) if info.name != "exercises"]
    return set(re.findall(r"\b(?:" + "|".join(modules) + r")\.(\w+)\s*\(", code))


def _test_function(code: str, name: str) -> str:
    """``code`` as an otter test: a function of the notebook's names it reads, and its call."""
    tree = ast.parse(code)
    bound = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load)}
    bound |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    bound |= {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
              if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    bound |= {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    free = sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
                  - bound - set(dir(builtins)))
    body = "\n".join(f"    {line}" if line.strip() else "" for line in code.splitlines())
    return f"def {name}({', '.join(free)}):\n{body}\n\n{name}({', '.join(free)})"


def _cell(cell_type: str, source: str, cell_id: str) -> dict:
    cell = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if cell_type == "code":
        cell |= {"outputs": [], "execution_count": None}
    return cell


def _otter_question(cells: list[dict], exercise: int, solution_end: int, number: int) -> list[dict]:
    """The question cells of one exercise: prompt, marked solution, public and hidden tests."""
    prompt, stub, check = cells[exercise], _source(cells[exercise + 1]), _source(cells[solution_end + 1])
    span = cells[exercise + 2:solution_end + 1]
    solution = "\n\n".join(_source(cell) for cell in span if cell["cell_type"] == "code")
    explanations = [re.sub(r"^(:{3,}.*|:class:.*)\n?", "", _source(cell), flags=re.MULTILINE).strip()
                    for cell in span if cell["cell_type"] == "markdown"]
    label = EXERCISE_LABEL.search(_source(prompt))
    name = re.sub(r"\W", "_", label.group(1) if label else f"exercise_{number}")
    quote = "'" * 3 if '"' * 3 in stub else '"' * 3  # the prompt is a string literal in the solution copy
    answer = (f"# BEGIN SOLUTION NO PROMPT\n{solution}\n# END SOLUTION\n"
              f"{quote} # BEGIN PROMPT\n{stub}\n{quote} # END PROMPT")
    tests = [_cell("code", _test_function(check, f"test_{name}"), f"{name}-public")]
    functions = DEFINED_FUNCTION.findall(stub)
    if functions:
        library = tuple(sorted(_library_calls(check) - _library_calls(solution)))
        checks = f"from sslbook import exercises\n{check}\n" + "\n".join(
            f"exercises.check_own_implementation({function}, {function!r}, {library!r})" for function in functions)
        tests.append(_cell("code", '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
                                   + _test_function(checks, f"test_{name}_own"), f"{name}-hidden"))
    return [_cell("raw", f"# BEGIN QUESTION\nname: {name}\npoints: {OTTER_POINTS}", f"{name}-begin"),
            {**copy.deepcopy(prompt), "id": f"{name}-prompt"}, _cell("raw", "# BEGIN SOLUTION", f"{name}-solution"),
            *[_cell("markdown", text, f"{name}-explanation-{k}") for k, text in enumerate(explanations) if text],
            _cell("code", answer, f"{name}-answer"), _cell("raw", "# END SOLUTION", f"{name}-solution-end"),
            _cell("raw", "# BEGIN TESTS", f"{name}-tests"), *tests, _cell("raw", "# END TESTS", f"{name}-tests-end"),
            _cell("raw", "# END QUESTION", f"{name}-end")]


def otter_copy(notebook: dict, name: str) -> dict:
    """An otter-grader assignment notebook (``otter assign``'s input) of a chapter notebook.

    Every exercise must be, in order: its ``{exercise}`` cell, the stub, the solution (markers
    included) and one check cell; anything else is refused, since it would be graded wrongly.
    """
    cells, ends = notebook["cells"], dict(solution_spans(notebook))
    config = (f"# ASSIGNMENT CONFIG\nname: {name}\ninit_cell: true\ncheck_all_cell: false\nexport_cell: false\n"
              "run_tests: true\ngenerate: true\nsolutions_pdf: false\ntests:\n  ok_format: false")  # tests that raise
    out, index, number = [_cell("raw", config, "otter-config")], 0, 0
    while index < len(cells):
        cell = cells[index]
        if cell["cell_type"] == "markdown" and EXERCISE.search(_source(cell)):
            number += 1
            end = ends.get(index + 2)
            if (end is None or cells[index + 1]["cell_type"] != "code" or end + 1 >= len(cells)
                    or cells[end + 1]["cell_type"] != "code"):
                raise ValueError(f"cell {index}: an exercise must be followed by its stub (code), its solution "
                                 "(solution-start ... solution-end) and its check (code)")
            out += _otter_question(cells, index, end, number)
            index = end + 2
        else:
            out.append(_cleared(copy.deepcopy(cell)))
            index += 1
    return {**copy.deepcopy(notebook), "cells": out}


def _cleared(cell: dict) -> dict:
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
    return cell


def book_root(root: Path | None = None) -> Path:
    """``root``, else the book's folder around the current folder; a clear error when there is none."""
    if root is not None:
        if not (Path(root) / "_toc.yml").is_file():
            raise FileNotFoundError(f"{root} is not the book's folder (it has no _toc.yml); pass the folder of "
                                    "a clone of the book")
        return Path(root)
    found = book_folder()
    if found is None:
        raise FileNotFoundError(f"the current folder {Path.cwd()} is not inside the book (no _toc.yml in it or "
                                "above it); run from a clone of the book or pass its folder (--book PATH)")
    return found


def toc_entries(root: Path | None = None) -> list[str]:
    """The documents listed in ``_toc.yml`` (paths without suffix), in reading order."""
    return re.findall(r"file:\s*([^\s#]+)", (book_root(root) / "_toc.yml").read_text())


def chapter_notebooks(root: Path | None = None) -> list[Path]:
    """The notebooks listed in ``_toc.yml``, in reading order."""
    root = book_root(root)
    return [root / f"{entry}.ipynb" for entry in toc_entries(root) if (root / f"{entry}.ipynb").exists()]


def write_copies(out: Path, root: Path | None = None, format: str = "copies") -> list[Path]:
    """Write ``out/student/...`` and ``out/instructor/...`` for every chapter, or with ``format="otter"``
    ``out/otter/...`` (otter-grader assignment notebooks); return the student (or otter) paths."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    root = book_root(root)
    written = []
    for notebook_path in chapter_notebooks(root):
        notebook = json.loads(notebook_path.read_text())
        relative = notebook_path.relative_to(root)
        if format == "otter":
            target = out / "otter" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            otter = otter_copy(notebook, notebook_path.stem)
            target.write_text(json.dumps(otter, indent=1, ensure_ascii=False) + "\n")
            written.append(target)
            continue
        for kind, make in (("student", student_copy), ("instructor", instructor_copy)):
            target = out / kind / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(make(notebook), indent=1, ensure_ascii=False) + "\n")
            if kind == "student":
                written.append(target)
    kinds = ("student", "instructor") if format == "copies" else ("otter",)
    for kind in kinds:  # each copy is a book folder: its chapters share checkpoints/
        (out / kind / "_toc.yml").write_text((root / "_toc.yml").read_text())
    return written
