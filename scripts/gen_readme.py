"""Regenerate the command outputs shown in README.md, or check they are current (CI), so the README cannot
drift from the program.

    python scripts/gen_readme.py          # rerun every example and rewrite its output in README.md
    python scripts/gen_readme.py --check  # CI: exit 1 if any example's output differs from what suanli prints

An example is a fenced block preceded by a marker comment naming which output lines to show::

    <!-- example lines=1-12,20 -->
    ```
    $ suanli train llama-3.1-8b --gpu a100-80gb ...
    (output, regenerated)
    ```

``lines`` selects 1-based output lines (ranges and single lines, comma separated; ``all`` for every line);
an elided run of lines is shown as ``...``. The command runs in-process through ``suanli.cli.main.main``
(shell continuation lines ``\\`` are joined), with the terminal width fixed, so the output is deterministic.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import write_or_check

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = re.compile(r"^<!-- example lines=([0-9,\-]+|all) -->$")
FENCE = "```"


def run_command(command: str) -> list[str]:
    """Run one ``suanli …`` command line in-process and return its stdout lines (stderr is not shown)."""
    from suanli.cli.main import main

    argv = shlex.split(command)
    if not argv or argv[0] != "suanli":
        raise SystemExit(f"README example must start with `suanli`: {command!r}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv[1:])
    if code != 0:
        raise SystemExit(f"README example exited {code}: {command}")
    return out.getvalue().rstrip("\n").split("\n")


def select(lines: list[str], spec: str) -> list[str]:
    """The chosen 1-based lines, with ``...`` where lines are left out (between and after the chosen ones)."""
    if spec == "all":
        return lines
    wanted: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        wanted.update(range(int(first), int(last or first) + 1))
    shown, previous = [], 0
    for number in sorted(n for n in wanted if n <= len(lines)):
        if number != previous + 1:
            shown.append("...")
        shown.append(lines[number - 1])
        previous = number
    if previous < len(lines):
        shown.append("...")
    return shown


def command_of(block: list[str]) -> tuple[str, int]:
    """The command at the top of a block (joining ``\\`` continuations) and how many lines it spans."""
    text, used = "", 0
    for line in block:
        used += 1
        piece = line.removeprefix("$ ").strip() if used == 1 else line.strip()
        if piece.endswith("\\"):
            text += piece[:-1].strip() + " "
            continue
        return text + piece, used
    raise SystemExit(f"unterminated command in README example: {block[:1]}")


def regenerate(readme: str) -> str:
    """README text with every marked example's output replaced by what suanli prints now."""
    lines, out, i = readme.split("\n"), [], 0
    while i < len(lines):
        match = MARKER.match(lines[i])
        out.append(lines[i])
        i += 1
        if not match:
            continue
        if not lines[i].startswith(FENCE):
            raise SystemExit(f"README line {i + 1}: an example marker must be followed by a code fence")
        end = lines.index(FENCE, i + 1)
        command, used = command_of(lines[i + 1:end])
        out.extend(lines[i:i + 1 + used])
        out.extend(select(run_command(command), match.group(1)))
        out.append(FENCE)
        i = end + 1
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    os.environ["COLUMNS"] = "120"
    os.environ.setdefault("SUANLI_LANG", "en")
    text = regenerate(README.read_text(encoding="utf-8"))
    return write_or_check({README: text}, check=args.check, command="python scripts/gen_readme.py")


if __name__ == "__main__":
    raise SystemExit(main())
