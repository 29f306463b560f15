"""Benchmark: wall time of the offline plan of a stack against merely importing the SDKs.

    python -m tools.dev.bench_plan [--stack prod] [--repeat 5]

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

REPO = Path(__file__).resolve().parents[2]
IMPORT_ONLY = "import pulumi, pulumi_alicloud, pulumi_kubernetes"
# pulumi_alicloud loads its submodules lazily: this also imports every module the program uses,
# which separates import cost from rendering cost.
IMPORT_PROGRAM = (
    "import components.cluster, components.database, components.storage, "
    "components.registry, components.network, components.llm_workload, "
    "components.chat_workload, components.network_security, tools.offline.engine"
)


def _wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    imports, program_imports, plans = [], [], []
    _wall([sys.executable, "-c", IMPORT_PROGRAM])  # warm the file cache once for all
    for _ in range(args.repeat):
        imports.append(_wall([sys.executable, "-c", IMPORT_ONLY]))
        program_imports.append(_wall([sys.executable, "-c", IMPORT_PROGRAM]))
        plans.append(_wall([sys.executable, "-m", "tools", "plan", "--stack", args.stack]))
    median = statistics.median
    result = {
        "stack": args.stack,
        "repeat": args.repeat,
        "import_sdks_median_s": round(median(imports), 3),
        "import_program_modules_median_s": round(median(program_imports), 3),
        "plan_median_s": round(median(plans), 3),
        "plan_over_import_sdks": round(median(plans) / median(imports), 2),
        "plan_over_import_program_modules": round(median(plans) / median(program_imports), 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
