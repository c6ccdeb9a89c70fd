#!/usr/bin/env python3
"""The book's two everyday commands, each creating or reusing the virtual environment .venv:

    python3 dev.py book   build the rendered book into _build/html (executes every chapter;
                          nitpicky, and any warning fails the build)
    python3 dev.py test   run the unit tests, then execute every chapter notebook with nbval

Options after the command go to the tool underneath (jupyter-book or pytest).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


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


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("book", "test"):
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    ensure_environment()
    os.chdir(ROOT)
    if command == "book":
        return subprocess.call([str(BIN / "jupyter-book"), "build", ".", "--warningiserror", "--nitpick",
                                "--keep-going", *extra])
    return subprocess.call([str(PYTHON), "-m", "pytest", "tests", *notebooks_in_toc_order(), "--nbval-lax",
                            "--nbval-cell-timeout=900", *extra])


if __name__ == "__main__":
    sys.exit(main())
