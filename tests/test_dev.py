"""`python3 dev.py book` empties the notebook cache whenever the package or results/ changed since it was filled."""
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
dev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dev)


@pytest.fixture
def book(tmp_path):
    """A small copy of the book's layout: package source, results, a chapter, and a filled cache."""
    root = tmp_path / "book"
    for relative, text in {"sslbook/__init__.py": "", "sslbook/methods/simclr.py": "TEMPERATURE = 0.5\n",
                           "results/full/simclr.json": '{"knn": 80.0}', "book/simclr.ipynb": "{}",
                           "_build/.jupyter_cache/global.db": "cached outputs"}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_the_hash_covers_the_package_and_results_and_nothing_else(book, tmp_path):
    before = dev.sources_hash(book)
    expected = hashlib.sha256()  # computed apart: every file in path order, path then content digest
    for relative in ("results/full/simclr.json", "sslbook/__init__.py", "sslbook/methods/simclr.py"):
        expected.update(relative.encode() + b"\0" + hashlib.sha256((book / relative).read_bytes()).digest())
    assert before == expected.hexdigest()
    shutil.copytree(book, tmp_path / "elsewhere")
    assert dev.sources_hash(tmp_path / "elsewhere") == before  # the paths are relative to the book
    (book / "book/simclr.ipynb").write_text('{"cells": []}')  # myst-nb hashes the notebooks' code itself
    (book / "sslbook/methods/__pycache__").mkdir()
    (book / "sslbook/methods/__pycache__/simclr.pyc").write_bytes(b"\0")
    assert dev.sources_hash(book) == before
    for change in (lambda: (book / "sslbook/methods/simclr.py").write_text("TEMPERATURE = 0.2\n"),
                   lambda: (book / "results/full/simclr.json").write_text('{"knn": 81.0}'),
                   lambda: (book / "results/full/byol.json").write_text("{}"),
                   lambda: (book / "sslbook/methods/simclr.py").rename(book / "sslbook/methods/sim_clr.py")):
        change()
        now = dev.sources_hash(book)
        assert now != before
        before = now


def test_a_changed_source_empties_the_cache_and_an_unchanged_one_keeps_it(book):
    cache = book / dev.JUPYTER_CACHE
    assert dev.empty_stale_cache(book) and not cache.exists()  # nothing said what the cache was filled from
    cache.mkdir()
    dev.record_sources(book)
    assert not dev.empty_stale_cache(book) and cache.is_dir()
    (book / "results/full/simclr.json").write_text('{"knn": 81.0}')
    assert dev.empty_stale_cache(book) and not cache.exists()
    assert not dev.empty_stale_cache(book)  # no cache: nothing to remove


def test_dev_book_empties_a_stale_cache_before_building_and_records_the_sources_after(book, monkeypatch):
    monkeypatch.setattr(dev, "ROOT", book)
    monkeypatch.setattr(dev, "ensure_environment", lambda: None)
    monkeypatch.chdir(book)
    dev.record_sources(book)
    (book / "sslbook/methods/simclr.py").write_text("TEMPERATURE = 0.2\n")
    seen = []

    def build(command):  # what jupyter-book finds, and the results a chapter writes as it runs
        seen.append((command[1:3], (book / dev.JUPYTER_CACHE).exists()))
        (book / "results/quick").mkdir()
        (book / "results/quick/simclr.json").write_text('{"knn": 40.0}')
        return 0

    monkeypatch.setattr(dev.subprocess, "call", build)
    monkeypatch.setattr(sys, "argv", ["dev.py", "book"])
    assert dev.main() == 0
    assert seen == [(["build", "."], False)]
    assert (book / dev.SOURCES_STAMP).read_text() == dev.sources_hash(book)  # with the results written


def test_the_book_caches_where_dev_py_looks():
    config = (ROOT / "_config.yml").read_text()
    execute = re.search(r"^execute:\n((?:[ \t]+.*\n)*)", config, re.MULTILINE).group(1)
    assert re.search(r"execute_notebooks:\s*cache", execute)
    assert not re.search(r"^\s+cache:", execute, re.MULTILINE), "execute.cache moved the cache: update dev.py"


def test_binder_installs_the_package_with_cpu_torch_and_no_tooling():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [line.strip() for line in (ROOT / "binder/requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    pinned = [line for line in lines if not line.startswith("-")]
    assert pinned == [spec for spec in project["dependencies"] if spec.startswith(("torch>", "torchvision>"))]
    post_build = ROOT / "binder/postBuild"
    assert post_build.stat().st_mode & 0o111, "repo2docker runs binder/postBuild: keep it executable"
    installs = [line for line in post_build.read_text().splitlines() if "pip install" in line]
    assert installs == ["python -m pip install --no-cache-dir -e ."]  # no extras: no test or book tooling
    major, minor = (ROOT / "binder/runtime.txt").read_text().strip().removeprefix("python-").split(".")
    assert (int(major), int(minor)) >= tuple(map(int, project["requires-python"].removeprefix(">=").split(".")))


def test_every_chapter_runs_once_and_the_readers_after_the_chapters_they_read():
    stages = dev.test_stages(["-x"])
    names = [[name for name, _ in stage] for stage in stages]
    notebooks = dev.notebooks_in_toc_order()
    book_level = [name for name in names[1] if name.endswith("(book level)")]
    assert names[0][0] == "unit tests" and len(stages) == 1 + len(dev.READER_STAGES)
    assert {"tests/test_browser.py (book level)", "tests/test_classroom.py (book level)"} <= set(book_level)
    readers = [[name for name in stage if not name.endswith("(book level)")] for stage in names[1:]]
    assert sorted(names[0][1:] + sum(readers, [])) == sorted(notebooks)  # each chapter once
    assert [set(stage) for stage in readers] == [set(stage) for stage in dev.READER_STAGES]
    assert "book/evaluation.ipynb" in readers[0] and readers[-1] == ["book/benchmark.ipynb"]  # it reads the evaluation's
    recorded = json.loads(dev.RECORDED_TIMES.read_text())
    times = [recorded.get(name, float("inf")) for name in names[0][1:]]
    assert times == sorted(times, reverse=True)  # the longest chapters first
    assert all(command[:3] == [str(dev.PYTHON), "-m", "pytest"] and "-x" in command
               for stage in stages for _, command in stage)


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_runs_go_side_by_side_stage_after_stage_and_any_failure_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(dev.TIMES_ENV, raising=False)
    log = tmp_path / "log"
    record = ("import os, time, sys; open({log!r}, 'a').write(f'{name} start {{time.monotonic()}}\\n'); "
              "time.sleep(0.3); open({log!r}, 'a').write(f'{name} end {{time.monotonic()}} "
              "{{os.environ[\"OMP_NUM_THREADS\"]}}\\n'); print('said {name}'); sys.exit({code})")
    stages = [[(name, _script(record.format(log=str(log), name=name, code=0))) for name in ("a", "b", "c")],
              [("d", _script(record.format(log=str(log), name="d", code=0)))]]
    assert dev.run_tests(stages, lanes=2) == 0
    events = {}
    for line in log.read_text().splitlines():
        name, what, when, *threads = line.split()
        events[name, what] = float(when)
        assert threads in ([], [str(max(1, (os.cpu_count() or 1) // 2))])
    assert events["b", "start"] < events["a", "end"]  # a and b side by side
    assert events["d", "start"] > max(events[name, "end"] for name in "abc")  # d after its stage
    printed = capsys.readouterr().out
    assert all(f"said {name}" in printed for name in "abcd") and "wall, all 4 runs" in printed

    def ending(*codes):
        return [[(f"run {i}", _script(f"import sys; sys.exit({code})"))] for i, code in enumerate(codes)]

    assert dev.run_tests(ending(1, 0)) == 1
    assert "failed: run 0" in capsys.readouterr().out
    assert dev.run_tests(ending(dev.NO_TESTS_COLLECTED, 0)) == 0  # a selection that leaves one run empty
    assert dev.run_tests(ending(dev.NO_TESTS_COLLECTED)) == 1  # nothing ran at all


def test_the_times_are_written_where_the_variable_says(tmp_path, monkeypatch):
    monkeypatch.setenv(dev.TIMES_ENV, str(tmp_path / "times" / "runs.json"))
    assert dev.run_tests([[("quick", _script("pass"))]]) == 0
    times = json.loads((tmp_path / "times" / "runs.json").read_text())
    assert list(times) == ["quick"] and 0 <= times["quick"] < 60
