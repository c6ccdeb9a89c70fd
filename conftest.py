"""pytest settings shared by the unit tests and the notebooks that nbval executes."""
NOTEBOOK_OUTPUT_TIMEOUT_SECONDS = 120


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

