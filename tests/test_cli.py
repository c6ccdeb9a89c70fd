"""The command line trains, resumes and evaluates in the quick profile."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sslbook
from sslbook import __main__ as cli
from sslbook import registry
from sslbook.__main__ import main
from sslbook.data import ImageData
from sslbook.profiles import Profile
from sslbook.train import History

needs_data = pytest.mark.skipif(not os.environ.get("SSLBOOK_DATA"), reason="SSLBOOK_DATA names no data folder")


def test_list_names_every_method(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("  ")] == list(registry.METHODS)
    assert [line for line in lines if not line.startswith("  ")] == [f"{family}:" for family in registry.FAMILIES]


def test_train_applies_the_chapter_settings_then_the_command_line(tmp_path, monkeypatch):
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    tiny = ImageData(images, torch.arange(64) % 10, [f"class {k}" for k in range(10)])
    monkeypatch.setattr(Profile, "load_data", lambda self, root=None, seed=0: (tiny, tiny))
    configs = []

    def record_config(method, data, config, **options):
        configs.append(config)
        return History()

    monkeypatch.setattr(cli, "train", record_config)
    monkeypatch.setattr(cli, "evaluate", lambda *args: dict.fromkeys(("knn", "linear", "alignment", "uniformity"), 0.0))
    common = ["train", "cpc_v2", "--profile", "quick", "--out", str(tmp_path), "--no-progress"]
    assert main(common) == 0
    assert main([*common, "--batch-size", "16", "--epochs", "1"]) == 0
    chapter, command_line = configs
    assert (chapter.batch_size, chapter.lr, chapter.epochs) == (32, 5e-3, registry.get("cpc_v2").training["quick"]["epochs"])
    assert (command_line.batch_size, command_line.lr, command_line.epochs) == (16, 5e-3, 1)


def test_unknown_method_is_a_usage_error_and_an_unreadable_checkpoint_a_runtime_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["train", "simclr2000", "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert "unknown method 'simclr2000'" in capsys.readouterr().err
    (tmp_path / "broken.pt").write_text("not a checkpoint")
    assert main(["eval", str(tmp_path / "broken.pt")]) == 1
    assert "not a readable sslbook checkpoint" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    assert main(["eval", str(tmp_path / "foreign.pt")]) == 1
    assert "not an sslbook checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pt")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_version_help_and_the_method_list(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip() == f"sslbook {sslbook.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "examples:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in registry.METHODS)
    subcommands = next(action for action in cli.parser()._actions if action.dest == "command").choices
    for name, subcommand in subcommands.items():
        for action in subcommand._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_classroom_outside_the_book_says_how_to_name_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["classroom", "--out", str(tmp_path / "copies")]) == 1
    message = capsys.readouterr().err
    assert "not inside the book" in message and "--book PATH" in message
    assert main(["classroom", "--book", str(tmp_path), "--out", str(tmp_path / "copies")]) == 1
    assert "has no _toc.yml" in capsys.readouterr().err
    book = Path(__file__).resolve().parent.parent
    assert main(["classroom", "--book", str(book), "--out", str(tmp_path / "copies")]) == 0
    assert (tmp_path / "copies" / "student" / "book" / "contrastive" / "simclr.ipynb").is_file()


def test_a_closed_pipe_ends_quietly():
    listing = subprocess.run(f"{sys.executable} -m sslbook list | head -1", shell=True, capture_output=True,
                             text=True, cwd=Path(__file__).resolve().parent.parent)
    assert listing.stdout == "pretext tasks:\n" and listing.stderr == ""


@needs_data
def test_train_resume_and_eval_in_the_quick_profile(tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--profile", "quick", "--batch-size", "500", "--out", out, "--no-progress"]
    assert main(["train", "simclr", "--epochs", "2", *common]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "simclr"  # standard output is the JSON alone
    record = json.loads((tmp_path / "run" / "simclr.json").read_text())
    for key in ("method", "profile", "recipe", "settings", "fingerprint", "knn", "linear", "alignment",
                "uniformity", "wall_seconds", "images_per_second", "hardware"):
        assert key in record
    assert main(["train", "simclr", "--epochs", "2", *common]) == 0  # the finished run, found again
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]["steps"]) == 2 * 10
    assert state["metadata"]["fingerprint"] == record["fingerprint"]
    capsys.readouterr()
    for changed, named in ((["--epochs", "3"], "training: epochs (saved 2, now 3)"),
                           (["--epochs", "2", "--batch-size", "250"], "training: batch_size (saved 500, now 250)")):
        assert main(["train", "simclr", *common, *changed]) == 1  # another run: never resumed from this one
        assert named in capsys.readouterr().err
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert main(["eval", out + "/checkpoint.pt"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 2  # standard output is the JSON alone
    assert main(["train", "supervised", "--epochs", "2", *common]) == 1
    assert "holds a 'simclr' run" in capsys.readouterr().err
