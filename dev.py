#!/usr/bin/env python3
"""The book's two everyday commands, each creating or reusing the virtual environment .venv:

    python3 dev.py book   build the rendered book into _build/html (executes every chapter;
                          nitpicky, and any warning fails the build). Executed notebooks are
                          cached, and the cache is emptied whenever the package's source or
                          results/ changed since it was filled (myst-nb hashes the code cells only)
    python3 dev.py test   run the unit tests and execute every chapter notebook with nbval, in two
                          lanes side by side (each with half the CPU's threads); then the chapters
                          that read what the others saved, beside the book-level tests

Options after the command go to the tool underneath (jupyter-book, or every pytest run).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
# What the chapters' outputs depend on besides their code cells: the package, and the results they show.
NOTEBOOK_SOURCES = ("sslbook/**/*.py", "results/**/*")
JUPYTER_CACHE = Path("_build") / ".jupyter_cache"  # myst-nb's default, beside _build/html (no execute.cache)
SOURCES_STAMP = Path("_build") / ".jupyter_cache.sources"  # the hash of NOTEBOOK_SOURCES the cache holds
# Chapters that read what other chapters saved (their results, their checkpoints), in stages after what
# they read: the evaluation chapter loads SimCLR's run, the benchmark every run (the evaluation's too).
READER_STAGES = (("book/evaluation.ipynb", "book/pretext/comparison.ipynb", "book/generative/comparison.ipynb"),
                 ("book/benchmark.ipynb",))
READ_OTHER_CHAPTERS = tuple(notebook for stage in READER_STAGES for notebook in stage)
LANES = 2  # test runs side by side; on two cores, one thread each beats two threads one after the other
NBVAL = ("--nbval-lax", "--nbval-cell-timeout=900")
NO_TESTS_COLLECTED = 5  # pytest's exit code when a selection (-k, -m) leaves a run nothing to do
RECORDED_TIMES = ROOT / "results" / "notebook-times-quick.json"  # each chapter's time, from a .ci/run
TIMES_ENV = "SSLBOOK_TEST_TIMES"  # where to write each run's time as JSON (optional)


def ensure_environment() -> None:
    """Create .venv if missing and install the project when pyproject.toml changed."""
    if sys.version_info < (3, 10):
        sys.exit(f"sslbook needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating the virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".sslbook-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print("installing sslbook and its dependencies into .venv", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(wanted)


def notebooks_in_toc_order() -> list[str]:
    """Every chapter notebook listed in _toc.yml, in reading order."""
    listed = re.findall(r"file:\s*([^\s#]+)", (ROOT / "_toc.yml").read_text())
    return [f"{entry}.ipynb" for entry in listed if (ROOT / f"{entry}.ipynb").exists()]


def sources_hash(root: Path) -> str:
    """SHA-256 over the relative path and content of every file of NOTEBOOK_SOURCES under ``root``."""
    digest = hashlib.sha256()
    files = {path for pattern in NOTEBOOK_SOURCES for path in root.glob(pattern) if path.is_file()}
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def empty_stale_cache(root: Path) -> bool:
    """Remove the notebook cache when NOTEBOOK_SOURCES differ from those it was filled with (or nothing
    says which those were); return whether it was removed."""
    cache, stamp = root / JUPYTER_CACHE, root / SOURCES_STAMP
    stale = cache.exists() and not (stamp.is_file() and stamp.read_text() == sources_hash(root))
    if stale:
        print(f"the package or results/ changed since {JUPYTER_CACHE} was filled: every chapter runs again",
              flush=True)
        shutil.rmtree(cache)
    return stale


def record_sources(root: Path) -> None:
    """Store the hash of NOTEBOOK_SOURCES beside the cache, after a build: the chapters write their
    results into results/ as they run, and the next build starts from what they wrote."""
    stamp = root / SOURCES_STAMP
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(sources_hash(root))


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("book", "test"):
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_environment()
    os.chdir(ROOT)
    if command == "book":
        empty_stale_cache(ROOT)
        status = subprocess.call([str(BIN / "jupyter-book"), "build", ".", "--warningiserror", "--nitpick",
                                  "--keep-going", *extra])
        record_sources(ROOT)
        return status
    return run_tests(test_stages(extra))


def test_stages(extra: list[str]) -> list[list[tuple[str, list[str]]]]:
    """The named pytest runs of ``dev.py test``, in stages of runs that may go side by side: first the unit
    tests and one run per chapter, the longest first (by ``RECORDED_TIMES``), so that no lane ends the
    stage with a long chapter while the other waits; then the chapters that read what those saved
    (``READER_STAGES``), the first of them beside the book-level tests, a run per file (they load the
    checkpoints the chapters saved)."""
    pytest = [str(PYTHON), "-m", "pytest", "-p", "no:cacheprovider", *extra]
    notebooks = notebooks_in_toc_order()
    runs = {notebook: [*pytest, notebook, *NBVAL] for notebook in notebooks}
    book_level = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").glob("test_*.py")
                        if "mark.book_level" in path.read_text())
    recorded = json.loads(RECORDED_TIMES.read_text()) if RECORDED_TIMES.is_file() else {}
    longest_first = sorted((notebook for notebook in notebooks if notebook not in READ_OTHER_CHAPTERS),
                           key=lambda notebook: -recorded.get(notebook, float("inf")))  # unknown: first
    return [[("unit tests", [*pytest, "tests", "-m", "not book_level"]),
             *[(notebook, runs[notebook]) for notebook in longest_first]],
            [*[(notebook, runs[notebook]) for notebook in READER_STAGES[0]],
             *[(f"{path} (book level)", [*pytest, path, "-m", "book_level"]) for path in book_level]],
            *[[(notebook, runs[notebook]) for notebook in stage] for stage in READER_STAGES[1:]]]


def run_tests(stages: list[list[tuple[str, list[str]]]], lanes: int = LANES) -> int:
    """Run each stage's commands ``lanes`` at a time (each with its share of the CPU's threads), the next
    stage when the last one ended; print each run's output as it ends, then every run's time. Return 0 when
    every run passed (or its selection left it nothing to run, as long as some run ran tests), else 1."""
    threads = max(1, (os.cpu_count() or 1) // lanes)
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    seconds, codes, lock = {}, {}, threading.Lock()

    def work(queue: list[tuple[str, list[str]]]):
        while True:
            with lock:
                if not queue:
                    return
                name, command = queue.pop(0)
            start = time.monotonic()
            with tempfile.TemporaryFile("w+") as output:
                code = subprocess.call(command, stdout=output, stderr=subprocess.STDOUT, env=environment)
                output.seek(0)
                with lock:
                    codes[name], seconds[name] = code, time.monotonic() - start
                    print(f"\n===== {name}: exit {code}, {seconds[name]:.1f} s =====", flush=True)
                    print(output.read(), end="", flush=True)

    start = time.monotonic()
    for stage in stages:
        queue = list(stage)
        workers = [threading.Thread(target=work, args=(queue,), daemon=True) for _ in range(min(lanes, len(queue)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    print(f"\n===== time per run ({lanes} side by side, {threads} thread(s) each) =====")
    for name, taken in seconds.items():
        print(f"{taken:8.1f} s  {'ok' if codes[name] in (0, NO_TESTS_COLLECTED) else 'FAILED'}  {name}")
    print(f"{time.monotonic() - start:8.1f} s  wall, all {len(seconds)} runs", flush=True)
    if os.environ.get(TIMES_ENV):
        out = Path(os.environ[TIMES_ENV])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({name: round(taken, 1) for name, taken in seconds.items()}, indent=1))
    failed = [name for name, code in codes.items() if code not in (0, NO_TESTS_COLLECTED)]
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed or all(code == NO_TESTS_COLLECTED for code in codes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
