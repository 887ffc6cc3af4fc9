"""`--run-missing quick`: run, at CPU scale, every experiment whose records are missing.

Experiments run through their own Python APIs (`realdata.sweep.run_grid`,
`simulate.quick.run_quick`) and write their records into the results directory, exactly
as their command lines would; figures then read those records like any others. A kind (or,
for training, a poster column) that already has records is left alone, so a user's own
runs are never mixed with quick ones.
"""
from __future__ import annotations

import time

from figures.commands import MNIST_FORMAT, QUICK_TRAIN_GRID
from figures.records import load_results
from realdata.errors import UserError

SIMULATE_KINDS = ("one_step", "linear", "spheres")  # cheapest first: an interrupted run still leaves panels


def _column_has_records(results, dataset: str) -> bool:
    column = MNIST_FORMAT if dataset in MNIST_FORMAT else (dataset,)
    return any(r["config"].get("dataset") in column for r in results.of("train"))


def missing_work(results, datasets) -> list[tuple[str, object]]:
    """(label, thunk(progress)) per experiment to run; nothing for kinds and columns that have records."""
    work = []
    for kind in SIMULATE_KINDS:
        if not results.of(kind):
            work.append((f"simulate {kind} (quick)",
                         lambda progress, kind=kind: _run_simulate(kind, results, progress)))
    for dataset in datasets:
        if not _column_has_records(results, dataset):
            g = QUICK_TRAIN_GRID[dataset]
            grid = f"{', '.join(g.methods)} × {len(g.eps)} budgets × {len(g.seeds)} seeds"
            work.append((f"train {dataset}: {grid}",
                         lambda progress, dataset=dataset: _run_train(dataset, results, progress)))
    return work


def _run_simulate(kind, results, progress):
    from simulate.quick import run_quick
    return run_quick(kind, out=results.directory, progress=progress)


def _run_train(dataset, results, progress):
    from realdata.sweep import run_grid
    grid = QUICK_TRAIN_GRID[dataset]
    return run_grid(dataset, grid.methods, grid.eps, seeds=grid.seeds, recipe="quick", out=results.directory,
                    progress=progress)


def check_datasets(datasets) -> list[str]:
    unknown = [d for d in datasets if d not in QUICK_TRAIN_GRID]
    if unknown or not datasets:
        raise UserError(f"no quick training grid for {', '.join(unknown) or 'an empty list'}; "
                        f"choose from {', '.join(QUICK_TRAIN_GRID)}.")
    return list(datasets)


def run_missing(results_dir, scale: str = "quick", datasets=tuple(QUICK_TRAIN_GRID), progress: bool = True,
                log=print) -> list[str]:
    """Run what is missing; returns one line per experiment (what ran, how long, or why not).

    An experiment that refuses its input (e.g. CIFAR-10 not found) is reported and skipped;
    the others still run and the figures are still drawn.
    """
    if scale != "quick":
        raise UserError(f"--run-missing knows only the 'quick' scale, got {scale!r}.")
    datasets = check_datasets(datasets)
    results = load_results(results_dir)
    work = missing_work(results, datasets)
    if not work:
        log("run-missing: every panel already has records; nothing to run.")
        return ["run-missing: every panel already has records; nothing to run."]
    lines = []
    for label, thunk in work:
        log(f"run-missing: {label} …")
        start = time.perf_counter()
        try:
            records = thunk(progress)
        except UserError as err:
            lines.append(f"run-missing: skipped {label}: {err}")
            log(lines[-1])
            continue
        lines.append(f"run-missing: {label}: {len(records)} records in {time.perf_counter() - start:.0f} s")
        log(lines[-1])
    return lines
