"""The book's structure: clean notebooks, all listed in the table of contents, one exercise style."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sslbook.classroom import toc_entries

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
TOC_ENTRIES = toc_entries(ROOT)


def cells(notebook):
    return json.loads(notebook.read_text())["cells"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(notebook):
    for cell in cells(notebook):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{notebook.name} has stored outputs; clear them before committing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_in_the_table_of_contents(notebook):
    entry = str(notebook.relative_to(ROOT).with_suffix(""))
    assert entry in TOC_ENTRIES, f"{entry} is missing from _toc.yml"


def test_every_toc_entry_exists():
    for entry in TOC_ENTRIES:
        assert any((ROOT / f"{entry}{suffix}").exists() for suffix in (".ipynb", ".md")), f"{entry} does not exist"


def method_chapters():
    return [p for p in NOTEBOOKS if "comparison" not in p.stem]


@pytest.mark.parametrize("notebook", method_chapters(), ids=lambda p: p.stem)
def test_chapter_has_checked_exercises_with_hidden_solutions(notebook):
    text = [("".join(c["source"]), c["cell_type"]) for c in cells(notebook)]
    markdown = "\n".join(source for source, kind in text if kind == "markdown")
    exercises = re.findall(r":::\{exercise\}\s*\n:label:\s*(\S+)", markdown)
    assert len(exercises) >= 2, f"{notebook.name} has {len(exercises)} exercises, at least 2 are needed"
    for label in exercises:
        assert re.search(r":::\{solution-start\} " + re.escape(label) + r"\s*\n:class: dropdown", markdown), \
            f"{notebook.name}: exercise {label} has no hidden (dropdown) solution"
    code = "\n".join(source for source, kind in text if kind == "code")
    assert "exercises.check" in code, f"{notebook.name} has no automatic exercise checks"


@pytest.mark.parametrize("notebook", method_chapters(), ids=lambda p: p.stem)
def test_chapter_follows_the_skeleton(notebook):
    headings = [line for c in cells(notebook) if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).splitlines() if line.startswith("## ")]
    for required in ("## Exercises", "## Summary"):
        assert required in headings, f"{notebook.name} lacks the section {required!r}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_installs_the_package_where_it_is_missing(notebook):
    """Opened alone (Colab's launch button), a notebook must be able to import sslbook."""
    first_code = next("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code")
    assert 'find_spec("sslbook") is None' in first_code and "%pip install" in first_code, \
        f"{notebook.name}: the first code cell should install sslbook when it is missing (see the other chapters)"


@pytest.mark.parametrize("inside_the_clone", [True, False])
def test_first_code_cell_finds_the_package_of_the_clone_it_is_in(inside_the_clone, tmp_path):
    """Opened from a clone with a Jupyter where sslbook is not installed, the chapter uses the clone's package."""
    notebook = ROOT / "book" / "contrastive" / "simclr.ipynb"
    first_code = next("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code")
    script = first_code.replace('%pip install --quiet "sslbook @ git+https://github.com/sslbook/sslbook"',
                                'print("would install from GitHub")')
    script += '\nspec = importlib.util.find_spec("sslbook")\nprint(spec.origin if spec else "not importable")'
    # -S: no site-packages, so the installed sslbook is out of sight, as in a Jupyter without it
    folder = notebook.parent if inside_the_clone else tmp_path
    output = subprocess.run([sys.executable, "-S", "-c", script], cwd=folder, capture_output=True, text=True,
                            check=True).stdout.splitlines()
    if inside_the_clone:
        assert output == [str(ROOT / "sslbook" / "__init__.py")]
    else:
        assert output == ["would install from GitHub", "not importable"]
