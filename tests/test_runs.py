"""Runs are found by what they are: the chapters and the command line build the same run, and a run
with one setting changed is trained afresh, never loaded from another run's checkpoint."""
import ast
import json
from pathlib import Path

import pytest
import torch

from sslbook import registry, runs
from sslbook.__main__ import parser, run_from_arguments
from sslbook.data import ImageData
from sslbook.profiles import choose_profile

ROOT = Path(__file__).resolve().parent.parent


def tiny_data(n: int = 128) -> ImageData:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageData(images, torch.arange(n) % 10, [f"class {k}" for k in range(10)])


def method_run_calls(notebook: Path) -> list[ast.Call]:
    """Every ``chapter.method_run(...)`` call in the notebook's code cells."""
    calls = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()  # IPython's magics become a statement of the same indent
        code = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                         and not line.lstrip().startswith("!=") else line for line in lines)
        for node in ast.walk(ast.parse(code)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "method_run"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "chapter"):
                calls.append(node)
    return calls


@pytest.mark.parametrize("name", list(registry.METHODS))
def test_the_chapter_trains_the_methods_own_settings(name):
    """The chapter's main run is ``chapter.method_run(name, profile, train_data)``, with nothing overridden."""
    calls = method_run_calls(ROOT / registry.get(name).chapter)
    main_runs = [call for call in calls if call.args and isinstance(call.args[0], ast.Constant)
                 and call.args[0].value == name and not call.keywords]
    assert main_runs, f"{registry.get(name).chapter} never calls chapter.method_run({name!r}, profile, train_data)"
    assert [ast.unparse(argument) for argument in main_runs[0].args] == [repr(name), "profile", "train_data"]


@pytest.mark.parametrize("profile_name", ["quick", "full"])
def test_chapter_and_command_line_build_runs_with_the_same_fingerprint(profile_name):
    # Exemplar-CNN's full profile cuts 8,000 seed patches from as many images
    profile, data = choose_profile(profile_name, verbose=False), tiny_data(128 if profile_name == "quick" else 8000)
    for name in registry.METHODS:
        arguments = parser().parse_args(["train", name, "--profile", profile_name])
        command_line = run_from_arguments(arguments, profile, data)
        chapter_run = runs.method_run(name, profile, data)
        assert command_line.fingerprint == chapter_run.fingerprint, name
        assert command_line.config == chapter_run.config and command_line.settings == chapter_run.settings, name


def test_a_changed_setting_is_a_different_fingerprint_that_names_it():
    profile, data = choose_profile("quick", verbose=False), tiny_data()
    first = runs.method_run("simclr", profile, data)
    saved = runs.run_fingerprint(first.method, first.config, data)
    for override, named in (({"temperature": 0.2}, "temperature (saved 0.5, now 0.2)"),
                            ({"batch_size": 128}, "training: batch_size (saved 256, now 128)"),
                            ({"seed": 1}, "initial weights and buffers")):
        changed = runs.method_run("simclr", profile, data, **override)
        fingerprint, description = runs.run_fingerprint(changed.method, changed.config, data)
        assert fingerprint != saved[0]
        assert named in runs.differences(saved[1], description)
    other_data = tiny_data(64)
    assert runs.run_fingerprint(first.method, first.config, other_data)[0] != saved[0]
    assert runs.method_run("simclr", profile, data).fingerprint == saved[0]  # the same settings, the same run


def test_an_unknown_override_is_refused_with_the_settings_it_could_be():
    with pytest.raises(ValueError, match="tempreature: not a setting of simclr .*temperature"):
        runs.method_run("simclr", choose_profile("quick", verbose=False), tiny_data(), tempreature=0.2)


def test_a_chapter_with_one_setting_changed_trains_afresh_and_never_loads_the_old_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(runs.CHECKPOINTS_ENV, str(tmp_path))
    profile, data = choose_profile("quick", verbose=False), tiny_data(64)
    tiny = dict(epochs=1, batch_size=32)

    def trained(**overrides):
        run = runs.method_run("simclr", profile, data, **{**tiny, **overrides})
        history = run.load_or_train(progress=False)
        assert (tmp_path / f"simclr-quick-{run.fingerprint}.pt").is_file()  # the run as built, not as trained
        return run, history, capsys.readouterr().out

    first, first_history, first_output = trained()
    assert "No saved run of simclr with these settings: training" in first_output
    for override in ({"temperature": 0.2}, {"batch_size": 16}):
        changed, changed_history, output = trained(**override)
        assert "training" in output and "Loading" not in output
        assert changed_history.steps != first_history.steps  # trained here, not read from the first run
    assert len(list(tmp_path.glob("simclr-quick-*.pt"))) == 3
    again, again_history, output = trained()
    assert "Loading the saved run" in output
    assert again_history.steps == first_history.steps
    for (key, expected), actual in zip(first.method.state_dict().items(), again.method.state_dict().values()):
        assert torch.equal(expected, actual), key
