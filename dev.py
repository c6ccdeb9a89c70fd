#!/usr/bin/env python3
"""The book's two everyday commands, each creating or reusing the virtual environment .venv:

    python3 dev.py book   build the rendered book into _build/html (executes every chapter;
                          nitpicky, and any warning fails the build). Executed notebooks are
                          cached, and the cache is emptied whenever the package's source or
                          results/ changed since it was filled (myst-nb hashes the code cells only)
    python3 dev.py test   run the unit tests, then execute every chapter notebook with nbval

Options after the command go to the tool underneath (jupyter-book or pytest).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
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
    return subprocess.call([str(PYTHON), "-m", "pytest", "tests", *notebooks_in_toc_order(), "--nbval-lax",
                            "--nbval-cell-timeout=900", *extra])


if __name__ == "__main__":
    sys.exit(main())
