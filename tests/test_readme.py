"""The README stays true: every command it shows is accepted by the script it calls.

The quickstart itself is run as written by CI (``.ci/quickstart_from_readme.sh``); the full-VOC
commands need Pascal VOC and a GPU, so here each one is parsed by its script's own argument parser
(a renamed or removed flag fails), and the toy commands' paths exist after the quickstart.
"""

import importlib
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SCRIPTS = ("create_data_lists", "train", "eval", "detect", "export", "convert_weights")


def readme_commands():
    """Every ``python SCRIPT.py ...`` or ``torchrun ... SCRIPT.py ...`` line of the README's bash blocks.

    :return: list of (script module name, argument list) pairs
    """
    commands = []
    text = README.read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                script = next((w for w in words if w.endswith(".py")), None)
                if script is None or Path(script).stem not in SCRIPTS:
                    continue
                if words[0] not in ("python", "torchrun"):
                    continue
                commands.append((Path(script).stem, words[words.index(script) + 1:]))
    return commands


def test_readme_shows_every_script():
    shown = {script for script, _ in readme_commands()}
    assert shown == set(SCRIPTS)


@pytest.mark.parametrize("script, arguments", readme_commands(), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_readme_command_parses(script, arguments):
    module = importlib.import_module(script)
    try:
        module.parse_args(arguments)
    except SystemExit as exit_:  # argparse's way of rejecting a command line
        pytest.fail(f"README command rejected by {script}.py: {' '.join(arguments)} (exit {exit_.code})")


def test_readme_launcher_commands_parse_as_torchrun():
    """``python -m ssd_support.launch`` takes torchrun's options: the README's launch lines are valid ones."""
    from torch.distributed import run as torchrun

    lines = [line for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
             for line in block.splitlines() if line.startswith("python -m ssd_support.launch")]
    assert lines
    for line in lines:
        words = shlex.split(line)[3:]
        args = torchrun.parse_args(words)
        assert args.training_script == "train.py" and int(args.nproc_per_node) > 1, line


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = "python -m pytest -q tests"
    assert test_command in README.read_text()
    assert test_command in ci
