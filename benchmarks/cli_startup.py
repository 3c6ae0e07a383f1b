"""Start-up time of the `sce` command against a bare `import torch`, measured in the same run.

Prints the median wall time of each command over several runs and its ratio to
`python -c "import torch"`. Target (issue 2): `sce list` under 0.3 s and under a quarter of a
bare torch import.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 0.3
TARGET_RATIO = 0.25


def median_time(cmd: list[str], repeats: int) -> float:
    """Median wall time of ``cmd`` (one warm-up run first, for the file cache)."""
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sce = shutil.which("sce") or "sce"
    baseline = median_time([sys.executable, "-c", "import torch"], args.repeats)
    cases = {
        "sce --help": [sce, "--help"],
        "sce list": [sce, "list"],
        "sce plugins": [sce, "plugins"],
        "import sce_core": [sys.executable, "-c", "import sce_core"],
    }
    print(f"{'command':<18} {'median s':>9} {'vs import torch':>16}")
    print(f"{'import torch':<18} {baseline:>9.3f} {1.0:>15.2f}x")
    for name, cmd in cases.items():
        t = median_time(cmd, args.repeats)
        print(f"{name:<18} {t:>9.3f} {t / baseline:>15.2f}x")
        if name == "sce list":
            ok = t < TARGET_SECONDS and t / baseline < TARGET_RATIO
            print(f"  target: < {TARGET_SECONDS} s and < {TARGET_RATIO:.2f}x torch -> "
                  f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
