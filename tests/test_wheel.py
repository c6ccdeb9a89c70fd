"""The package as users get it: built as a wheel, installed on its own, run from an empty folder.

Slow (marked ``slow``: about a minute on two CPU cores): it builds and installs the wheel, then
trains one tiny epoch through the installed command line, in subprocesses that cannot see the clone.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslbook import registry
from sslbook.data import DATA_ENV
from sslbook.paths import CHECKPOINTS_ENV, RESULTS_ENV
from sslbook.profiles import PROFILE_ENV, PROFILES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(command: list, **options) -> subprocess.CompletedProcess:
    finished = subprocess.run([str(part) for part in command], capture_output=True, text=True, **options)
    assert finished.returncode == 0, f"{' '.join(map(str, command))} failed:\n{finished.stdout}\n{finished.stderr}"
    return finished


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into with ``pip install --no-deps --target``."""
    build = tmp_path_factory.mktemp("wheel")
    source = build / "source"  # a copy, so that the build writes build/ and sslbook.egg-info there, not in the clone
    shutil.copytree(ROOT / "sslbook", source / "sslbook", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "-w", build / "wheels", source])
    (wheel,) = (build / "wheels").glob("sslbook-*.whl")
    run([*pip, "install", "--no-deps", "--no-index", "--quiet", "--target", build / "installed", wheel])
    return build / "installed"


def installed_environment(installed: Path, **variables) -> dict:
    """The environment of a user with the installed copy alone: none of the book's variables set."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", DATA_ENV, PROFILE_ENV, CHECKPOINTS_ENV, RESULTS_ENV)}
    return {**environment, "PYTHONPATH": str(installed), **variables}


def file_list(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


def method_names(listing: str) -> list[str]:
    """The methods ``sslbook list`` printed (indented lines, under the family headings)."""
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ")]


def write_image_folder(root: Path, classes: int = 1) -> None:
    """Random 32x32 PNGs in ImageFolder layout, exactly as many per class as the quick profile draws."""
    generator = np.random.default_rng(0)
    for split, per_class in (("train", PROFILES["quick"]["train_per_class"]),
                             ("test", PROFILES["quick"]["test_per_class"])):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for number in range(per_class):
                Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{number}.png")


def test_the_wheel_holds_every_module_and_is_imported_from_where_it_was_installed(installed, tmp_path):
    in_the_clone = {str(path.relative_to(ROOT)) for path in (ROOT / "sslbook").rglob("*.py")}
    in_the_wheel = {str(path.relative_to(installed)) for path in (installed / "sslbook").rglob("*.py")}
    assert in_the_wheel == in_the_clone, f"missing from the wheel: {sorted(in_the_clone - in_the_wheel)}"
    imported = run([sys.executable, "-c", "import sslbook; print(sslbook.__file__)"], cwd=tmp_path,
                   env=installed_environment(installed))
    assert Path(imported.stdout.strip()) == installed / "sslbook" / "__init__.py"


def test_the_installed_package_trains_from_an_empty_folder_and_writes_only_there(installed, tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    write_image_folder(data)
    work.mkdir()
    installed_before = file_list(installed)
    environment = installed_environment(installed, **{DATA_ENV: str(data)})
    listing = run([sys.executable, "-m", "sslbook", "list"], cwd=work, env=environment).stdout
    assert method_names(listing) == list(registry.METHODS)
    trained = run([sys.executable, "-m", "sslbook", "train", "simclr", "--profile", "quick", "--epochs", "1",
                   "--batch-size", "250", "--no-progress"], cwd=work, env=environment)
    written = file_list(work)
    assert {"runs/run/checkpoint.pt", "runs/run/simclr.json"} <= set(written)
    assert all(path.startswith("runs/run/") for path in written), f"written outside --out: {sorted(written)}"
    scores = json.loads(trained.stdout)
    assert json.loads((work / "runs" / "run" / "simclr.json").read_text())["knn"] == scores["knn"]
    state = torch.load(work / "runs" / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]["steps"]) == 2  # 500 images in batches of 250
    assert file_list(installed) == installed_before, "running the installed package wrote into its folder"


def test_the_console_script_runs_the_installed_package(installed, tmp_path):
    script = installed / "bin" / "sslbook"  # where pip --target puts console scripts
    environment = installed_environment(installed)
    listing = run([script, "list"], cwd=tmp_path, env=environment).stdout
    assert method_names(listing) == list(registry.METHODS)
