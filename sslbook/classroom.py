"""Student and instructor copies of the chapter notebooks.

Every exercise in the book has the same cells, in this order: the ``{exercise}`` text, a stub to
fill in (``...  # your code here``), the solution between ``{solution-start}`` and
``{solution-end}`` markdown cells, and a cell of automatic checks. A student copy drops the
solution (both markers and every cell between them) and keeps the stub and the checks, so the
checks fail with their message until the student's answer is right. An instructor copy keeps
everything. Both start with a cell that says which copy it is.

    python -m sslbook classroom --out classroom     # writes classroom/student and classroom/instructor
"""
from __future__ import annotations

import copy
import json
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


def write_copies(out: Path, root: Path | None = None) -> list[Path]:
    """Write ``out/student/...`` and ``out/instructor/...`` for every chapter; return the student paths."""
    root = book_root(root)
    written = []
    for notebook_path in chapter_notebooks(root):
        notebook = json.loads(notebook_path.read_text())
        relative = notebook_path.relative_to(root)
        for kind, make in (("student", student_copy), ("instructor", instructor_copy)):
            target = out / kind / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(make(notebook), indent=1, ensure_ascii=False) + "\n")
            if kind == "student":
                written.append(target)
    for kind in ("student", "instructor"):  # each copy is a book folder: its chapters share checkpoints/
        (out / kind / "_toc.yml").write_text((root / "_toc.yml").read_text())
    return written
