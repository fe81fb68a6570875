"""Write generated files, or check they are current (CI), for the scripts that generate docs and data."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def write_or_check(outputs: Mapping[Path, str], *, check: bool, command: str) -> int:
    """Write each file, or with ``check`` return 1 (naming the stale files and ``command``) if any differs."""
    stale = [path.name for path, text in outputs.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if not check:
        for path, text in outputs.items():
            path.write_text(text, encoding="utf-8")
        return 0
    if stale:
        print(f"stale generated files: {', '.join(stale)}; run `{command}`", file=sys.stderr)
        return 1
    return 0
