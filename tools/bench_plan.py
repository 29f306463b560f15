"""Benchmark: wall time of the offline plan of a stack against merely importing the SDKs.

    python -m tools.bench_plan [--stack prod] [--repeat 5]

Both are measured in the same run, each in a fresh interpreter (as a user or CI would run them),
alternating so that machine noise hits both alike. The figure to read is the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMPORT_ONLY = "import pulumi, pulumi_alicloud, pulumi_kubernetes"


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    imports, plans = [], []
    _wall([sys.executable, "-c", IMPORT_ONLY])  # warm the file cache once for both
    for _ in range(args.repeat):
        imports.append(_wall([sys.executable, "-c", IMPORT_ONLY]))
        plans.append(_wall([sys.executable, "-m", "tools.plan", "--stack", args.stack]))
    result = {
        "stack": args.stack, "repeat": args.repeat,
        "import_median_s": round(statistics.median(imports), 3),
        "plan_median_s": round(statistics.median(plans), 3),
        "plan_over_import": round(statistics.median(plans) / statistics.median(imports), 2),
        "import_s": [round(x, 3) for x in imports], "plan_s": [round(x, 3) for x in plans],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
