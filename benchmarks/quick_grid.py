"""Does every quick recipe train, and what does each cell cost? One row per grid cell.

    nice python -m benchmarks.quick_grid --datasets digits,cifar10 --seeds 0,1,2 \\
        [--methods st,at,coap,crown-ibp,ibp] [--out bench-quick] [--json FILE]

Trains (`realdata.train.train`) cell by cell over the quick budgets the poster uses
(`figures.commands.QUICK_TRAIN_GRID`) and prints, per cell: the final clean training error
(what `realdata.health` judges), the last epoch's error of the method's own objective
(attacked or not-certified), the test standard and robust error, `realdata.health.record_health`, and the process CPU seconds and wall seconds the
cell took (training + evaluation).  CPU seconds are what to extrapolate from on a shared
machine: wall time there depends on everyone else's load, which is printed with each row
(the 1-minute load average).  Finished cells are read back, not rerun (their CPU time is
then unknown and shown as "-"), so an interrupted measurement resumes.

Not a CI test: a full three-seed run of both datasets takes tens of CPU minutes.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

from figures.commands import QUICK_TRAIN_GRID
from realdata.cli import Parser
from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.health import chance_error, final_train_error, record_health
from realdata.methods import TRAIN_METHODS, check_method
from realdata.recipes import make_config
from realdata.train import paths, train
from realdata.validate import check_out_dir


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(dataset: str, method: str, eps: float, seed: int, out: str) -> dict:
    config = make_config(dataset, method, "quick", eps=eps, seed=seed)
    fresh = not paths(config, out)[0].exists()
    cpu, wall = cpu_seconds(), time.perf_counter()
    record = train(config, out=out, progress=False)
    metrics, history = record["metrics"], record.get("history") or [{}]
    return {"dataset": dataset, "method": method, "eps": eps, "seed": seed,
            "train_error": final_train_error(record), "objective_error": history[-1].get("train_error"),
            "standard_error": metrics.get("standard_error"),
            "robust_error": metrics.get("robust_error"), "certified_error": metrics.get("certified_error"),
            "health": record_health(record), "chance": chance_error(10),
            "cpu_s": cpu_seconds() - cpu if fresh else None,
            "wall_s": time.perf_counter() - wall if fresh else None, "load1": os.getloadavg()[0]}


def _fmt(value, spec=".3f"):
    return "-" if value is None else format(value, spec)


def row_text(row: dict) -> str:
    return (f"{row['dataset']:8s} {row['method']:9s} eps={row['eps']:<8.4g} seed={row['seed']}  "
            f"train {_fmt(row['train_error'])}  obj {_fmt(row['objective_error'])}  std {_fmt(row['standard_error'])}  "
            f"rob {_fmt(row['robust_error'])}  cert {_fmt(row['certified_error'])}  "
            f"health {row['health'] or 'ok':9s} cpu {_fmt(row['cpu_s'], '.1f')}s  "
            f"wall {_fmt(row['wall_s'], '.1f')}s  load {row['load1']:.2f}")


def main(argv=None) -> int:
    parser = Parser(prog="python -m benchmarks.quick_grid", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(QUICK_TRAIN_GRID),
                        help=f"comma-separated, among {', '.join(QUICK_TRAIN_GRID)} (default: all)")
    parser.add_argument("--methods", default=",".join(TRAIN_METHODS), help="default: every training method")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--eps", default=None, help="override the budgets (comma-separated)")
    parser.add_argument("--out", default="bench-quick", help="where the records go (default: bench-quick/)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    cells = _cells(args)  # every flag checked before the first cell trains
    check_out_dir(args.out)
    if args.json:
        check_out_dir(Path(args.json).resolve().parent, "--json's folder")
    rows = []
    for dataset, method, eps, seed in cells:
        rows.append(measure(dataset, method, eps, seed, args.out))
        print(row_text(rows[-1]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    return 0


def _cells(args) -> list[tuple]:
    """(dataset, method, ε, seed) of every cell the flags ask for, in the order they run."""
    datasets = parse_list(args.datasets)
    for dataset in datasets:
        if dataset not in QUICK_TRAIN_GRID:
            raise UserError(f"--datasets: no quick grid for {dataset!r}; choose among {', '.join(QUICK_TRAIN_GRID)}.")
    methods = [check_method(m) for m in parse_list(args.methods)]
    seeds = parse_seeds(args.seeds)
    override = parse_list(args.eps, parse_eps) if args.eps else None
    return [(dataset, method, eps, seed) for dataset in datasets for method in methods
            for eps in (override or QUICK_TRAIN_GRID[dataset].eps) for seed in seeds]


if __name__ == "__main__":
    sys.exit(run_main(main))
