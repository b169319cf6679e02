"""``python -m lsbench``: the help, ``list``, lazy imports and the message for a missing extra."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lsbench import cli
from lsbench.losses import RECIPES

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("flax", "matplotlib", "PIL", "tensorflow_datasets", "torch", "sklearn", "mlxtend", "safetensors")


def _imported_after(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_losses_and_proofs_import_no_experiment_or_paper_dependency():
    assert _imported_after("import lsbench.losses, lsbench.losses.chunked, lsbench.losses.linear, proofs") == []


def test_help_and_list_import_no_experiment_or_paper_dependency():
    help_code = ("from lsbench.cli import main\n"
                 "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert _imported_after(help_code) == []
    assert _imported_after("from lsbench.cli import main\nmain(['list'])") == []


def test_the_sharded_losses_import_no_flax_until_the_data_parallel_trainer_is_asked_for():
    core = "import lsbench.parallel\nfrom lsbench.parallel import vocab_sharded_loss, make_mesh"
    assert _imported_after(core) == []
    assert _imported_after(core + "\nfrom lsbench.parallel import DataParallelTrainer") == ["flax"]


def test_help_names_every_command_and_where_results_go(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command.name in text
    assert "paper/results/bench-<machine>.json" in text and "paper/results/proofs.json" in text
    assert "lsbench[experiments]" in text and "lsbench[paper]" in text


def test_list_prints_every_recipe(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["recipe", "target", "/", "loss", "source", "proof", "reduction"]
    for r in RECIPES.values():
        row = next(line for line in lines[2:] if line.split()[:1] == [r.name])
        assert r.title in row and r.proof in row
        assert f"  {r.name:<19} {r.formula}" in lines  # the LaTeX formulas below the table
    assert cli.main(["list", "--latex"]) == 0
    latex = capsys.readouterr().out
    assert all(r.formula in latex for r in RECIPES.values()) and "formulas (LaTeX):" not in latex


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _missing(name):
    def fail(*args, **kwargs):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return fail


def test_a_command_whose_extra_is_missing_exits_2_naming_the_install(monkeypatch, capsys):
    monkeypatch.setattr(cli.importlib, "import_module", _missing("flax.nnx"))
    assert cli.main(["reproduce", "pets"]) == 2
    err = capsys.readouterr().err
    assert "'flax'" in err and "pip install 'lsbench[experiments]'" in err


def test_a_missing_extra_at_run_time_exits_2(monkeypatch, capsys):
    import lsbench.commands.paper as paper

    monkeypatch.setattr(paper, "run", _missing("matplotlib.figure"))
    assert cli.main(["paper", "--no-figures"]) == 2
    assert "pip install 'lsbench[paper]'" in capsys.readouterr().err


def test_a_missing_module_that_is_not_an_extra_is_not_hidden(monkeypatch):
    monkeypatch.setattr(cli.importlib, "import_module", _missing("lsbench_typo"))
    with pytest.raises(ModuleNotFoundError):
        cli.main(["list"])


def test_every_extra_named_by_the_cli_exists_in_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for command in cli.COMMANDS:
        assert command.extra == "" or command.extra in extras, command
    for module, extra in cli.OPTIONAL_MODULES.items():
        assert extra in extras, (module, extra)
    core = " ".join(project["dependencies"])
    for heavy in ("flax", "matplotlib", "pillow", "tensorflow", "scikit-learn", "mlxtend", "safetensors"):
        assert heavy not in core
