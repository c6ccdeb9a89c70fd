"""The book's structure: clean notebooks, all listed in the table of contents, one exercise style."""
import json
import os
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


def first_code_cell(notebook):
    return next("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code")


def test_every_first_code_cell_is_the_same_and_installs_from_the_books_repository():
    """Opened alone (Colab's launch button), a notebook must be able to import sslbook: every chapter
    does it with the same first code cell, which installs from the repository the launch buttons open."""
    reference = first_code_cell(ROOT / "book" / "contrastive" / "simclr.ipynb")
    differing = [notebook.name for notebook in NOTEBOOKS if first_code_cell(notebook) != reference]
    assert not differing, f"{', '.join(differing)}: the first code cell differs from simclr.ipynb's; copy that one"
    assert 'find_spec("sslbook") is None' in reference and "%pip install" in reference
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.MULTILINE)[1]
    assert reference.count(f'"sslbook @ git+{url}"') == 2, \
        f"the first code cell should install (and tell how to install) from _config.yml's repository.url, {url}"


FAKE_PIP = """
import os, pathlib
class get_ipython:  # IPython's %pip, faked: it prints its command and installs where FAKE_PIP_INSTALLS says
    def run_line_magic(self, magic, line):
        print(magic, line)
        if os.environ.get("FAKE_PIP_INSTALLS"):
            package = pathlib.Path(os.environ["FAKE_PIP_INSTALLS"]) / "sslbook"
            package.mkdir()
            (package / "__init__.py").write_text("")
"""


@pytest.mark.parametrize("case", ["inside the clone", "installed", "installation failed"])
def test_first_code_cell_uses_the_clone_else_installs_else_stops(case, tmp_path):
    """From a clone, a Jupyter without sslbook uses the clone's package; elsewhere the cell installs it,
    and when the installation fails it stops with how to install, not one cell later."""
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = ROOT / "book" / "contrastive" / "simclr.ipynb"
    script = FAKE_PIP + TransformerManager().transform_cell(first_code_cell(notebook))
    script += 'spec = importlib.util.find_spec("sslbook")\nprint(spec.origin)'
    site_packages = tmp_path / "site-packages"
    site_packages.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(site_packages)}
    if case == "installed":
        environment["FAKE_PIP_INSTALLS"] = str(site_packages)
    # -S: no site-packages, so the installed sslbook is out of sight, as in a Jupyter without it
    finished = subprocess.run([sys.executable, "-S", "-c", script], cwd=notebook.parent if case == "inside the clone"
                              else tmp_path, env=environment, capture_output=True, text=True)
    output = finished.stdout.splitlines()
    pip_command = 'pip install --quiet "sslbook @ git+https://github.com/sslbook/sslbook"'
    if case == "inside the clone":
        assert output == [str(ROOT / "sslbook" / "__init__.py")], finished.stderr
    elif case == "installed":
        assert output == [pip_command, str(site_packages / "sslbook" / "__init__.py")], finished.stderr
    else:
        assert finished.returncode != 0 and output == [pip_command]
        assert "ModuleNotFoundError: sslbook is not installed and installing it failed" in finished.stderr
        assert 'pip install "sslbook @ git+https://github.com/sslbook/sslbook"' in finished.stderr


CODE_WIDTH = 88  # characters: a code line longer than the rendered book's column scrolls sideways


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_code_line_fits_the_books_column(notebook):
    long = [(index, line) for index, cell in enumerate(cells(notebook)) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > CODE_WIDTH]
    assert not long, f"{len(long)} code line(s) over {CODE_WIDTH} characters, the first in cell {long[0][0]}: {long[0][1]!r}"
