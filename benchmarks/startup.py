"""Start-up time of everyday commands, as users feel it (wall clock of a fresh process).

    python benchmarks/startup.py [--repeat 15]

Reports the median over repeats of ``suanli --help`` and ``suanli params llama-3.1-8b``, next to a bare
``python -c pass`` so the interpreter's own start is visible. Target (issue 2): well under 0.5 s each.
Numbers from a noisy shared machine: read the ratio to the bare interpreter as much as the absolute time.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_S = 0.5


def median_wall_s(argv: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    suanli = shutil.which("suanli")
    entry = [suanli] if suanli else [sys.executable, "-m", "suanli"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "suanli --help": [*entry, "--help"],
        "suanli params llama-3.1-8b": [*entry, "params", "llama-3.1-8b"],
        "suanli flops llama-3.1-8b --seq 4096": [*entry, "flops", "llama-3.1-8b", "--seq", "4096"],
    }
    baseline = None
    worst = 0.0
    print(f"{'command':40s} {'median s':>9s} {'× python':>9s}")
    for name, argv in cases.items():
        seconds = median_wall_s(argv, args.repeat)
        baseline = baseline or seconds
        if name.startswith("suanli"):
            worst = max(worst, seconds)
        print(f"{name:40s} {seconds:9.3f} {seconds / baseline:9.2f}")
    verdict = "meets" if worst < TARGET_S else "MISSES"
    print(f"slowest suanli command {worst:.3f} s: {verdict} the {TARGET_S} s target")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
