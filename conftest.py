"""pytest settings shared by the unit tests and the notebooks that nbval executes."""
import json
import os
from collections import defaultdict
from pathlib import Path

NOTEBOOK_OUTPUT_TIMEOUT_SECONDS = 120
NOTEBOOK_TIMES_ENV = "SSLBOOK_NOTEBOOK_TIMES"  # where to write each notebook's time as JSON (optional)
_notebook_seconds: dict[str, float] = defaultdict(float)


def pytest_configure(config):
    config.addinivalue_line("markers", "book_level: runs after the notebooks (it reuses the checkpoints they saved)")
    config.addinivalue_line("markers", "slow: takes tens of seconds (builds a wheel, trains in subprocesses)")


def pytest_collection_modifyitems(items):
    """Run book-level tests last, and give nbval more time to deliver a finished cell's output.

    The book-level tests execute chapters again; run after the notebooks, they load the
    checkpoints those runs saved instead of training a second time (in any order they pass).

    nbval reads a cell's output messages only after the cell has finished, and waits 5 s for
    each. A long training cell leaves a deep queue on a busy two-core machine; 120 s leaves room
    for it (the execution limit itself stays ``--nbval-cell-timeout``). Cells must also keep
    their message count low (``sslbook.train.progress_bar`` redraws at most once a second), since
    the kernel drops messages past ZMQ's high-water mark.
    """
    items[:] = ([item for item in items if item.get_closest_marker("book_level") is None]
                + [item for item in items if item.get_closest_marker("book_level") is not None])
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = max(item.output_timeout, NOTEBOOK_OUTPUT_TIMEOUT_SECONDS)


def pytest_runtest_logreport(report):
    """Add up the time of every cell (setup, call, teardown: the kernel's start too) per notebook."""
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    """Each notebook's time, in the order they ran, and their total; as JSON where the variable says."""
    if not _notebook_seconds:
        return
    terminalreporter.section("time per notebook")
    for path, seconds in _notebook_seconds.items():
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
    terminalreporter.write_line(f"{sum(_notebook_seconds.values()):8.1f} s  all {len(_notebook_seconds)} notebooks")
    if os.environ.get(NOTEBOOK_TIMES_ENV):
        out = Path(os.environ[NOTEBOOK_TIMES_ENV])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({path: round(seconds, 1) for path, seconds in _notebook_seconds.items()}, indent=1))
