"""Run a grid of training runs (methods × budgets × seeds) and tabulate it.

    python -m realdata.sweep --dataset cifar10 --methods at,coap,crown-ibp --norm l2 \\
        --eps 9/255,18/255,36/255 --seeds 0,1,2 [--recipe quick|paper]

Each cell is one `realdata.train.train` run with its own record, so an interrupted sweep
picks up where it stopped: finished cells are skipped (``--force`` recomputes them) and
an unfinished one resumes from its checkpoint.  Figures call `run_grid` directly.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import traceback

from tqdm.auto import tqdm

from realdata import distributed
from realdata.cli import (Parser, add_config_arguments, add_run_arguments, check_run_options, config_overrides,
                          recipe_epilog)
from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.data import DATASETS
from realdata.health import health_warning, record_health
from realdata.methods import PAPER_METHODS, TRAIN_METHODS, check_method
from realdata.recipes import TrainConfig, make_config
from realdata.results import record_path
from realdata.threats import NORMS
from realdata.train import summary_line, train
from realdata.validate import check_out_dir

#: metrics shown in the table, in this order, with their column titles
COLUMNS = (("standard_error", "standard"), ("robust_error", "robust"), ("certified_error", "certified"), ("certified_error_best", "cert-best"),
           ("acc_disc", "acc-disc"), ("robust_acc_disc", "rob-acc-disc"), ("unstable_fraction", "unstable"))
#: metrics also shown as the difference to AT's mean in the same (dataset, norm, ε) cell
GAPS = (("standard_error", "std-gap"), ("robust_error", "rob-gap"))

#: exit code of a sweep whose cells stopped on an error of the toolkit (2 is for bad input)
EXIT_CELLS_FAILED = 1


class CellsFailed(Exception):
    """Cells that stopped on an error of this toolkit (a bug, not the input); `records` holds
    the cells that finished, so a caller can still show them."""

    def __init__(self, message: str, records: list[dict]):
        super().__init__(message)
        self.records = records


def _error_path(out, config: TrainConfig, device):
    """Where a cell's traceback is kept: beside where its record would be."""
    return record_path(out, config.name, config, distributed.device_type(device)).with_suffix(".error.txt")


def _keep_traceback(out, config: TrainConfig, device, err: Exception) -> str:
    """Write `err`'s traceback to the cell's error file → a line naming the file."""
    path = _error_path(out, config, device)
    path.write_text("".join(traceback.format_exception(err)))
    return f"{config.method} eps={config.eps:.4g} seed={config.seed}: {type(err).__name__}: {err} ({path})"


def grid_configs(dataset: str, methods, eps_values, seeds, *, norm: str = "l2", recipe: str = "quick",
                 overrides: dict | None = None) -> list[TrainConfig]:
    """The grid's configurations, method-major then ε then seed (the order they run in)."""
    methods, eps_values, seeds = list(methods), list(eps_values), list(seeds)
    for method in methods:
        check_method(method)
    if not (methods and eps_values and seeds):
        raise UserError("the grid is empty; give at least one method, one budget and one seed.")
    extra = dict(overrides or {})
    return [make_config(dataset, method, recipe, norm=norm, eps=float(eps), seed=int(seed), **extra)
            for method in methods for eps in eps_values for seed in seeds]


def run_grid(dataset: str, methods, eps_values, seeds, *, norm: str = "l2", recipe: str = "quick",
             overrides: dict | None = None, out="results", data_dir=None, device=None, force: bool = False,
             progress: bool = True, log=None) -> list[dict]:
    """Train every cell of the grid (skipping finished records) → the records, in grid order.

    `overrides` are TrainConfig fields applied to every cell (e.g. {"epochs": 2}); `log`
    receives one summary line per cell (None: silent).  Under torchrun every process
    must call this; the records come back on rank 0 and the list is empty elsewhere.

    A cell that cannot run (a damaged record or checkpoint, a run of it in progress
    elsewhere) does not stop the others: every cell that can run does, then one UserError
    lists every such cell and how to rerun only those.  A cell that stops on any other
    error (a bug) does not stop them either: its traceback goes to a file beside its record
    and, once the others have run, `CellsFailed` names each file (in one process; under
    torchrun the error stops every process, which could not skip the cell in step).
    """
    configs = grid_configs(dataset, methods, eps_values, seeds, norm=norm, recipe=recipe, overrides=overrides)
    check_out_dir(out)
    ctx = distributed.setup(device)  # one process group for the whole grid, not one per cell
    records, problems, failed = [], [], []
    try:
        cells = tqdm(configs, desc=f"sweep {dataset}", unit="run", disable=not (progress and ctx.is_main),
                     file=sys.stderr)
        for config in cells:
            cells.set_postfix(method=config.method, eps=f"{config.eps:.4g}", seed=config.seed)
            try:
                record = train(config, out=out, data_dir=data_dir, device=device, force=force, progress=progress)
            except UserError as err:
                problems.append(f"{config.method} eps={config.eps:.4g} seed={config.seed}: {err}")
                continue
            except Exception as err:  # noqa: BLE001 -- a bug in one cell: keep its traceback, run the rest
                if ctx.world_size > 1:
                    raise
                failed.append(_keep_traceback(out, config, device, err))
                continue
            if ctx.is_main:  # a traceback kept by an earlier sweep no longer describes this cell
                _error_path(out, config, device).unlink(missing_ok=True)
            if record is not None:
                records.append(record)
                if log is not None:
                    log(summary_line(record))
    finally:
        ctx.close()
    blocked = (f"{len(problems)} of {len(configs)} cells did not run (" + " | ".join(problems) + "); fix or move "
               "away the files named, then rerun the same command: the finished cells are skipped, so only these "
               "run.") if problems else ""
    if failed:  # a bug outranks a blocked cell: exit 1, and the blocked cells are named too
        raise CellsFailed(f"{len(failed)} of {len(configs)} cells stopped on an error of this toolkit, not of "
                          "your input (" + " | ".join(failed) + "); please report it with the traceback file "
                          "named. The other cells finished; rerunning the same command runs only the unfinished "
                          "ones." + (f" Also: {blocked}" if blocked else ""), records)
    if problems:
        raise UserError(blocked)
    return records


def _fmt(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f}±{statistics.stdev(values):.3f}"


def _gap(recs, at_recs, key) -> str:
    """Mean of `key` over `recs` minus AT's mean in the same cell (blank without healthy AT runs)."""
    ours = [r["metrics"].get(key) for r in recs if r["metrics"].get(key) is not None]
    theirs = [r["metrics"].get(key) for r in at_recs if r["metrics"].get(key) is not None]
    if not ours or not theirs:
        return ""
    return f"{statistics.mean(ours) - statistics.mean(theirs):+.3f}"


def run_label(record) -> str:
    c = record["config"]
    return f"{c['dataset']} {c['method']} {c['norm']} eps={c['eps']:.4g} seed={c['seed']}"


def format_table(records) -> str:
    """One row per (method, ε): mean ± standard deviation over the healthy seeds of each
    metric; a collapsed or diverged run (`realdata.health.record_health`) gets a row of its
    own, flagged, and one warning line below the table names them all."""
    groups: dict[tuple, list] = {}
    flagged = []
    for rec in records:
        c = rec["config"]
        key = (c["dataset"], c["method"], c["norm"], c["eps"])
        groups.setdefault(key, [])
        if record_health(rec):
            flagged.append((key, rec))
        else:
            groups[key].append(rec)
    header = ["dataset", "method", "norm", "eps", "seeds"] + [t for _, t in COLUMNS] + [t for _, t in GAPS] + ["flags"]
    rows = [header]
    for key, recs in groups.items():
        dataset, method, norm, eps = key
        if recs:
            at = groups.get((dataset, "at", norm, eps)) or []
            rows.append([dataset, method, norm, f"{eps:.4g}", str(len(recs))]
                        + [_fmt([r["metrics"].get(k) for r in recs]) for k, _ in COLUMNS]
                        + [_gap(recs, at, k) for k, _ in GAPS] + [""])
        rows += [[dataset, method, norm, f"{eps:.4g}", f"seed={rec['seed']}"]
                 + [_fmt([rec["metrics"].get(k)]) for k, _ in COLUMNS] + ["" for _ in GAPS] + [record_health(rec)]
                 for fkey, rec in flagged if fkey == key]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    warning = health_warning(records, run_label)
    return "\n".join(lines + ([f"warning: {warning}"] if warning else []))


GRID_FIELDS = ("dataset", "method", "norm", "eps", "seed")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m realdata.sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="Train a grid of methods × budgets × seeds with realdata.train (one record per "
                                "cell; finished cells are skipped, unfinished ones resume) and print a table "
                                "of standard, robust and certified error and accuracy discrepancy. Exit "
                                "status: 0 when every cell finished; 2 for bad input or a cell that cannot run "
                                "(named, with the fix); 1 when a cell stopped on an error of the toolkit (its "
                                "traceback is kept beside its record as .error.txt; the other cells still run).",
                    epilog=recipe_epilog())
    parser.add_argument("--dataset", default="cifar10", help=f"dataset name ({', '.join(DATASETS)}; default: cifar10)")
    parser.add_argument("--methods", default=",".join(PAPER_METHODS),
                        help=f"comma-separated methods from {', '.join(TRAIN_METHODS)} (default: the paper's "
                             f"{','.join(PAPER_METHODS)})")
    parser.add_argument("--norm", default="l2", help=f"threat model ({', '.join(NORMS)}; default: l2)")
    parser.add_argument("--eps", default=None,
                        help="comma-separated budgets in input space, e.g. 9/255,18/255,36/255 (default: the recipe's)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the records as a JSON list instead of the table")
    add_run_arguments(parser)
    add_config_arguments(parser, exclude=GRID_FIELDS)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    methods = parse_list(args.methods)
    for method in methods:
        check_method(method)
    eps_values = (parse_list(args.eps, parse_eps) if args.eps is not None
                  else [make_config(args.dataset, methods[0], args.recipe).eps])
    seeds = parse_seeds(args.seeds)
    overrides = config_overrides(args, exclude=GRID_FIELDS)
    grid_configs(args.dataset, methods, eps_values, seeds, norm=args.norm, recipe=args.recipe, overrides=overrides)
    check_run_options(args)  # after every cell's configuration: a refused sweep creates nothing
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        records = run_grid(args.dataset, methods, eps_values, seeds, norm=args.norm, recipe=args.recipe,
                           overrides=overrides, out=args.out, data_dir=args.data_dir,
                           device=args.device, force=args.force, progress=not args.quiet, log=log)
    except CellsFailed as err:  # the finished cells' table first, then what failed
        _print_records(err.records, args.json)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_CELLS_FAILED
    _print_records(records, args.json)
    return 0


def _print_records(records, as_json: bool) -> None:
    if records:
        print(json.dumps(records, indent=1) if as_json else format_table(records))


if __name__ == "__main__":
    sys.exit(run_main(main))
