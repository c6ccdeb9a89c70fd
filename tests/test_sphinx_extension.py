"""The instructors' page's generated tables: read from the notebooks and the committed results."""
import ast
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def extension():
    pytest.importorskip("docutils")
    spec = importlib.util.spec_from_file_location("sslbook_sphinx", ROOT / "book" / "_ext" / "sslbook_sphinx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_retrain_a_variant_exercise_is_listed_with_its_change_and_the_sweep_s_fastest_time(extension):
    lines = extension.variant_experiments(ROOT)
    rows = [line for line in lines[2:] if line.startswith("| {doc}")]
    listed = {}
    for notebook in sorted((ROOT / "book").rglob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "code" and "= chapter.train_variant(" in text:
                listed[notebook.relative_to(ROOT).with_suffix("").as_posix()] = text
    assert len(listed) >= 4 and len(rows) == len(listed)
    for row in rows:
        entry = row.split("</")[1].split(">")[0]
        change = row.split("` | `")[1].split("`")[0]
        call = ast.parse(f"f({change})").body[0].value
        assert call.keywords and all(f"{keyword.arg}={ast.literal_eval(keyword.value)!r}".replace("'", '"')
                                     .replace(" ", "") in listed[entry].replace(" ", "").replace("\n", "")
                                     for keyword in call.keywords), row
        method = entry.rsplit("/", 1)[1]
        sweep = ROOT / "results" / "sweep-quick" / f"{'align_uniform' if method == 'alignment_uniformity' else method}.json"
        seconds = [run["seconds"] for run in json.loads(sweep.read_text())["runs"]]
        assert row.endswith(f"| {min(seconds):.0f} s |"), row
