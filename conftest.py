"""pytest settings shared by the unit tests and the notebooks that nbval executes."""

NOTEBOOK_OUTPUT_TIMEOUT_SECONDS = 120


def pytest_collection_modifyitems(items):
    """Give nbval more than its fixed 5 s to deliver a finished cell's output.

    nbval waits 5 s for each output message after a cell has finished. On a busy two-core CI
    machine the kernel's output thread can fall that far behind after a training cell, and the
    cell is then failed although it ran correctly; the execution limit itself stays
    ``--nbval-cell-timeout``.
    """
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = max(item.output_timeout, NOTEBOOK_OUTPUT_TIMEOUT_SECONDS)
