"""Runtime of `python -m theory.check_theorem`, the default run and `--relaxation all` (target: each under
10 s on 2 CPU cores).

    python -m benchmarks.check_theorem_runtime        (or: python benchmarks/check_theorem_runtime.py)

Reports wall-clock and CPU seconds of a fresh process (imports and the sympy derivation included);
on a shared machine the CPU time is the figure to compare with the target.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

TARGET_S = 10.0


def measure(extra_args):
    """Exit code, wall and CPU seconds of one fresh `check_theorem --json` process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "theory.check_theorem", "--json", *extra_args], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"args": " ".join(extra_args) or "(default)", "exit_code": proc.returncode, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "target_s": TARGET_S, "within_target_cpu": cpu < TARGET_S,
            "load_average": os.getloadavg()[0]}


def main():
    reports = [measure([]), measure(["--relaxation", "all"])]
    for report in reports:
        print(json.dumps(report))
    return 0 if all(r["exit_code"] == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
