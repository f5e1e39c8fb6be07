"""Run the README's examples that build on the quickstart, exactly as written, in README order.

A code block is run when the line just before its opening fence is the marker
``<!-- ci: run after the quickstart -->``: ```bash blocks with bash, ```python blocks with python, each
in a fresh process from the repository root. They use the quickstart's data and checkpoint, so CI runs
this after .ci/quickstart_from_readme.sh. Any failing block fails CI.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- ci: run after the quickstart -->"


def marked_blocks(readme_text):
    """:return: list of (language, code) of the marked blocks, in README order"""
    pattern = re.compile(re.escape(MARKER) + r"\n```(bash|python)\n(.*?)```", flags=re.S)
    return pattern.findall(readme_text)


def main():
    blocks = marked_blocks((ROOT / "README.md").read_text())
    if not blocks:
        sys.exit("readme_examples: no block marked '" + MARKER + "' in README.md")
    for number, (language, code) in enumerate(blocks, start=1):
        print(f"== README example {number}/{len(blocks)} ({language}):\n{code}==", flush=True)
        command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT)
        print(f"== took {time.perf_counter() - start:.1f} s, exit status {result.returncode}", flush=True)
        if result.returncode != 0:
            sys.exit(f"readme_examples: example {number} ({language}) failed")
    print(f"readme_examples: all {len(blocks)} marked README examples ran")


if __name__ == "__main__":
    main()
