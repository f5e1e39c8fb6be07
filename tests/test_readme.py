"""The README and the docs/ pages stay true: every command they show is accepted by the script it calls, every
relative link leads somewhere, and the CI runner of their marked examples finds them and fails when it should.

The quickstart itself is run as written by CI (``.ci/quickstart_from_readme.sh``), and so are the blocks marked
``<!-- ci: run after the quickstart -->`` (``.ci/readme_examples.py``); the full-VOC commands need Pascal VOC
and a GPU, so here each one is parsed by its script's own argument parser (a renamed or removed flag fails).
"""

import argparse
import importlib
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: every page a user reads: the README, then docs/*.md by name (the order .ci/readme_examples.py runs them in)
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
SCRIPTS = ("create_data_lists", "train", "eval", "detect", "export", "convert_weights")


def bash_blocks(page):
    """:return: the code of every ```bash block of one markdown page"""
    return re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)


def page_commands(pages=PAGES):
    """Every ``python SCRIPT.py ...`` or ``torchrun ... SCRIPT.py ...`` line of the pages' bash blocks.

    :return: list of (script module name, argument list) pairs
    """
    commands = []
    for page in pages:
        for block in bash_blocks(page):
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


def test_docs_pages_exist():
    """The manual's pages are there (a glob over a missing folder would make every test below vacuous for docs/)."""
    assert len(PAGES) > 1, "no docs/*.md page"


def test_readme_shows_every_script():
    """Every script is shown somewhere (README or docs/), and the README itself shows the tutorial's path."""
    assert {script for script, _ in page_commands()} == set(SCRIPTS)
    assert {script for script, _ in page_commands([README])} >= {"create_data_lists", "train", "eval", "detect"}


@pytest.mark.parametrize("script, arguments", page_commands(), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_readme_command_parses(script, arguments):
    module = importlib.import_module(script)
    try:
        module.parse_args(arguments)
    except SystemExit as exit_:  # argparse's way of rejecting a command line
        pytest.fail(f"README/docs command rejected by {script}.py: {' '.join(arguments)} (exit {exit_.code})")


def test_readme_launcher_commands_parse_as_torchrun():
    """``python -m ssd_support.launch`` takes torchrun's options: the pages' launch lines are valid ones."""
    from torch.distributed import run as torchrun

    lines = [line for page in PAGES for block in bash_blocks(page)
             for line in block.splitlines() if line.startswith("python -m ssd_support.launch")]
    assert lines
    for line in lines:
        words = shlex.split(line)[3:]
        args = torchrun.parse_args(words)
        assert args.training_script == "train.py" and int(args.nproc_per_node) > 1, line


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = "python -m pytest -q tests"
    assert test_command in README.read_text()
    assert test_command in ci


def test_code_tour_names_every_module():
    """Section 2 of the README (the code tour) has a row for every module of ssd_support/."""
    modules = {path.name for path in (ROOT / "ssd_support").glob("*.py")} - {"__init__.py"}
    tour = README.read_text().split("## 2. The code")[1].split("\n## 3.")[0]
    missing = sorted(name for name in modules if f"`{name}`" not in tour)
    assert not missing, f"README section 2 has no row for ssd_support/ modules {missing}"


def heading_anchors(page):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens.

    :return: set of anchor strings (without '#')
    """
    anchors = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # '#' comments in code are no headings
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 1
        while anchor in anchors:  # a repeated heading gets -1, -2, ...
            anchor, n = f"{slug}-{n}", n + 1
        anchors.add(anchor)
    return anchors


def relative_links(page):
    """:return: every relative link target (``[text](target)`` and ``![alt](target)``) of a page, code excluded"""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(page):
    """Every relative link of the README and the docs/ pages names an existing file, and its #anchor a heading of
    that page (or of the page itself)."""
    targets = relative_links(page)
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_docs_page_links_back_to_the_readme():
    for page in PAGES[1:]:
        assert "../README.md" in relative_links(page), page.name
        assert f"docs/{page.name}" in relative_links(README), f"the README does not link to docs/{page.name}"


def _readme_examples():
    """:return: the .ci/readme_examples.py module (not a package, so loaded from its file)"""
    spec = importlib.util.spec_from_file_location("readme_examples", ROOT / ".ci" / "readme_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _project(tmp_path, readme, docs):
    """A README.md and docs/ pages (name -> text) in tmp_path; :return: tmp_path"""
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "docs").mkdir()
    for name, text in docs.items():
        (tmp_path / "docs" / name).write_text(text)
    return tmp_path


MARK = "<!-- ci: run after the quickstart -->\n"


def test_readme_examples_finds_the_marked_blocks_of_readme_and_docs():
    """The repository's own pages: marked blocks are found, and each is one CI will run (bash or python)."""
    blocks = _readme_examples().all_marked_blocks(ROOT)
    assert blocks and all(language in ("bash", "python") for _, language, _ in blocks)


def test_readme_examples_runs_readme_then_docs_by_name(tmp_path):
    root = _project(tmp_path, "x\n" + MARK + "```bash\necho readme >> log\n```\n",
                    {"b.md": MARK + "```bash\necho b >> log\n```\n",
                     "a.md": MARK + "```python\nopen('log', 'a').write('a\\n')\n```\nunmarked\n```bash\necho no >> log\n```\n"})
    _readme_examples().main([], root=root)
    assert (root / "log").read_text().split() == ["readme", "a", "b"]


def test_readme_examples_fails_on_a_failing_block(tmp_path):
    root = _project(tmp_path, MARK + "```bash\necho one >> log\n```\n",
                    {"a.md": MARK + "```bash\nexit 3\n```\n", "b.md": MARK + "```bash\necho late >> log\n```\n"})
    with pytest.raises(SystemExit, match=r"example 2 \(docs/a.md, bash\) failed"):
        _readme_examples().main([], root=root)
    assert (root / "log").read_text().split() == ["one"]  # it stops at the failure


def test_readme_examples_fails_when_no_block_is_marked(tmp_path):
    root = _project(tmp_path, "```bash\necho unmarked\n```\n", {"a.md": "no code\n"})
    with pytest.raises(SystemExit, match="no block marked"):
        _readme_examples().main([], root=root)


class _ParserCaught(Exception):
    """Raised in place of parsing, once a script's parse_args has built its parser."""


def script_parser(script):
    """The argparse parser a script's ``parse_args`` builds, caught at its ``parse_args`` call (nothing is parsed).

    :param script: module name of the script, e.g. ``"train"``
    :return: an argparse.ArgumentParser
    """
    caught = []

    def catch(parser, *args, **kwargs):
        caught.append(parser)
        raise _ParserCaught

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        importlib.import_module(script).parse_args([])
    except _ParserCaught:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return caught[0]


def _cell(text):
    """:return: text fit for one markdown table cell (one line, '|' escaped)"""
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_rows(parser, actions):
    """:return: markdown table rows, one per argparse action: the option as typed, its default, its help"""
    formatter = argparse.HelpFormatter(parser.prog)  # the plain one: its help strings append no "(default: ...)"
    rows = []
    for action in actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += " " + formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        else:
            name = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
        if action.required and action.nargs not in ("*", "?"):  # argparse marks a '*' positional required too
            default = "required"
        elif action.nargs == 0:
            default = "off" if not action.default else "on"
        elif action.default is None or action.default is argparse.SUPPRESS or action.default == []:
            default = ""
        else:
            default = f"`{action.default}`"
        help_ = formatter._expand_help(action) if action.help else ""
        rows.append(f"| `{_cell(name)}` | {_cell(default)} | {_cell(help_)} |")
    return rows


def cli_reference():
    """The text of docs/cli.md: every script's options, read from its own argparse parser.

    :return: markdown text
    """
    lines = ["# Command-line reference", "",
             "What this page is for: every option of every script, with its default and its help text, as the "
             "script's own `--help` gives them. The README and the other pages show the options in use; this page "
             "lists them all.", "",
             "[Back to the README](../README.md)", "",
             "This page is generated from each script's argparse parser (`python tests/test_readme.py --cli > "
             "docs/cli.md`); `tests/test_readme.py` fails when it and the scripts disagree.", ""]
    lines += [f"- [{script}.py](#{script}py)" for script in SCRIPTS] + [""]
    for script in SCRIPTS:
        parser = script_parser(script)
        summary = (parser.description or "").strip().split("\n\n")[0]  # the first paragraph: some are whole docstrings
        lines += [f"## {script}.py", "", _cell(summary), ""]
        for group in parser._action_groups:
            rows = _option_rows(parser, group._group_actions)
            if not rows:
                continue
            lines += [f"**{_cell(group.title)}**", "", "| option | default | what it does |", "|---|---|---|"]
            lines += rows + [""]
    return "\n".join(lines)


def test_cli_reference_is_up_to_date():
    """docs/cli.md lists exactly what the scripts' parsers hold (a new, renamed or changed option fails here)."""
    written = (ROOT / "docs" / "cli.md").read_text()
    assert written == cli_reference(), "docs/cli.md is out of date: python tests/test_readme.py --cli > docs/cli.md"


if __name__ == "__main__":
    if sys.argv[1:] != ["--cli"]:
        sys.exit("usage: python tests/test_readme.py --cli > docs/cli.md")
    sys.path.insert(0, str(ROOT))
    print(cli_reference(), end="")
