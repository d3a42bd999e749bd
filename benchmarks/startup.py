"""Start-up times of the commands that should not pay for torch: `onestep --help` and `onestep info`, beside
`import onestep.api` (which does). Median of N fresh processes each, with the machine's load recorded.

    python benchmarks/startup.py -o benchmarks/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAM = ROOT / "tests" / "fixtures" / "v1" / "ramp-64x96-normal.osc"
COMMANDS = {
    "onestep --help": [sys.executable, "-m", "onestep.cli", "--help"],
    "onestep info FILE": [sys.executable, "-m", "onestep.cli", "info", str(STREAM)],
    "python -c 'import onestep.api' (torch)": [sys.executable, "-c", "import onestep.api"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    results = {}
    for name, command in COMMANDS.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        results[name] = {"median_seconds": round(statistics.median(times), 3), "all": [round(t, 3) for t in times]}
        print(name, results[name], flush=True)
    report = {
        "what": "wall time of a fresh process, median of runs",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "results": results,
    }
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
