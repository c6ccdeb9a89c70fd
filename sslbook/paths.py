"""Where the book's files go: checkpoints, results and classroom copies, never into the package.

The working folder is the book's folder when the current folder lies inside one (the nearest folder
above that holds ``_toc.yml``, so every chapter of a clone shares one ``checkpoints/``), else the
current folder itself (a Colab session, a package installed from a wheel). The variables
``SSLBOOK_CHECKPOINTS`` and ``SSLBOOK_RESULTS`` name other folders; decoded image folders are kept in
the user's cache folder (``SSLBOOK_CACHE`` names another).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

CHECKPOINTS_ENV = "SSLBOOK_CHECKPOINTS"
RESULTS_ENV = "SSLBOOK_RESULTS"
CACHE_ENV = "SSLBOOK_CACHE"


def book_folder(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current folder) that holds ``_toc.yml``."""
    start = (start or Path.cwd()).resolve()
    return next((folder for folder in (start, *start.parents) if (folder / "_toc.yml").is_file()), None)


def working_folder() -> Path:
    return book_folder() or Path.cwd()


def checkpoints_dir() -> Path:
    return Path(os.environ.get(CHECKPOINTS_ENV) or working_folder() / "checkpoints")


def results_base() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or working_folder() / "results")


def cache_dir() -> Path:
    """Where decoded data is kept between sessions: ``$SSLBOOK_CACHE``, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sslbook" / "decoded"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``: a write that is cut
    off (a killed kernel, a full disk) leaves the previous file as it was, and never a partial one. The
    temporary name is the process's and thread's own, so writers of the same file (two chapters filling one
    cache side by side) never share it; the last rename wins, and each file is whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.partial")
    try:
        write(temporary)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
