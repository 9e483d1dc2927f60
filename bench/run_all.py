"""Run every benchmark and print its figures (``make bench``; ``make bench-quick``).

Benchmarks print figures and ratios; they are never timed tests. Record the figures in
``bench/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "import": ["bench_import.py"],
    "gaps": ["bench_gaps.py"],
    "siting": ["bench_siting.py"],
    "load": ["bench_load.py"],
}
QUICK = {
    "import": ["--quick"],
    "gaps": ["--areas", "20000"],
    "siting": ["--quick"],
    "load": ["--quick"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all")
    parser.add_argument("only", nargs="*", choices=[*BENCHES, []], help="run only these")
    args = parser.parse_args()
    failed = []
    for name, command in BENCHES.items():
        if args.only and name not in args.only:
            continue
        script = HERE / command[0]
        if not script.exists():
            print(f"== {name}: {script.name} missing, skipped")
            continue
        extra = QUICK[name] if args.quick else []
        print(f"== {name}: {' '.join([script.name, *extra])}", flush=True)
        began = time.perf_counter()
        result = subprocess.run([sys.executable, str(script), *extra], check=False)
        print(
            f"== {name}: exit {result.returncode} after {time.perf_counter() - began:.0f} s\n",
            flush=True,
        )
        if result.returncode:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
