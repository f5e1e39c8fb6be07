"""Run the README's and docs/' examples that build on the quickstart, exactly as written, in a fixed order.

A code block is run when the line just before its opening fence is the marker
``<!-- ci: run after the quickstart -->``: ```bash blocks with bash, ```python blocks with python, each
in a fresh process from the repository root. They use the quickstart's data and checkpoint, so CI runs
this after .ci/quickstart_from_readme.sh. Any failing block fails CI, and so does finding no block at all.

The order: README.md first, then every ``docs/*.md`` page in the order of its file name (``sorted``), each
page's blocks in page order. A block may use what an earlier block wrote (``docs/python-hub-onnx.md``'s
Python blocks read the ``ssd300_nms.onnx`` its export block writes), so such blocks sit on the same page,
or on a page whose name sorts after the one that writes it.

``--list`` prints the blocks that would run, with their page, and runs nothing.
"""

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- ci: run after the quickstart -->"


def pages(root):
    """:return: the markdown pages of root searched for marked blocks, in run order: README.md, then docs/*.md by
        name"""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def marked_blocks(readme_text):
    """:return: list of (language, code) of the marked blocks of one page's text, in page order"""
    pattern = re.compile(re.escape(MARKER) + r"\n```(bash|python)\n(.*?)```", flags=re.S)
    return pattern.findall(readme_text)


def all_marked_blocks(root):
    """:return: list of (page path relative to root, language, code), in run order (see the module docstring)"""
    return [(str(page.relative_to(root)), language, code)
            for page in pages(root) for language, code in marked_blocks(page.read_text())]


def parse_args(argv=None):
    """Command-line options: --list only."""
    parser = argparse.ArgumentParser(description="Run the code blocks of README.md and docs/*.md marked '"
                                                 + MARKER + "', in order.")
    parser.add_argument("--list", action="store_true", help="print the marked blocks in run order; run nothing")
    return parser.parse_args(argv)


def main(argv=None, root=ROOT):
    """Run (or with --list, print) every marked block of root's pages, each from root; exit non-zero (SystemExit
    with a message) at the first failure or when none is found."""
    args = parse_args(argv)
    blocks = all_marked_blocks(root)
    if not blocks:
        sys.exit("readme_examples: no block marked '" + MARKER + "' in README.md or docs/*.md")
    for number, (page, language, code) in enumerate(blocks, start=1):
        print(f"== example {number}/{len(blocks)} ({page}, {language}):\n{code}==", flush=True)
        if args.list:
            continue
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=root)
        print(f"== took {time.perf_counter() - start:.1f} s, exit status {result.returncode}", flush=True)
        if result.returncode != 0:
            sys.exit(f"readme_examples: example {number} ({page}, {language}) failed")
    if args.list:
        print(f"readme_examples: {len(blocks)} marked examples (none run: --list)")
    else:
        print(f"readme_examples: all {len(blocks)} marked examples ran")


if __name__ == "__main__":
    main()
