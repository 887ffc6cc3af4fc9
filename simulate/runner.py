"""Run a list of experiment configurations, one result record each, skipping finished ones.

Every simulate command (one_step, linear, spheres) is "a list of frozen configs → a list
of records"; this module is that loop, so skipping, `--force`, atomic writes and the
shared command-line flags behave identically in all three.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from realdata.errors import UserError, parse_list
from realdata.locks import record_lock
from realdata.results import existing_record, make_record, record_path, write_record
from realdata.validate import check_fields, check_out_dir

DEFAULT_OUT = Path("results")
MAX_JOBS = 256  # worker processes; each holds a torch runtime


def run_configs(kind: str, configs, run_one: Callable, out=DEFAULT_OUT, force: bool = False,
                progress: bool = True, jobs: int = 1, group: Callable | None = None) -> list[dict]:
    """Run each config (or a single one) unless its record exists; return the records in config order.

    `jobs > 1` runs the configs in that many worker processes; configs with the same
    `group(config)` key run in one worker, in order (so a run one trains, the next may reuse).

    A config is a frozen dataclass whose `name` names its record file.

    `run_one(config, progress, checkpoint)` returns `(metrics, history, extra)`; `extra`
    holds additional top-level record fields (e.g. the learning-rate search).  `checkpoint`
    is a path prefix for the run's training checkpoints (beside its record, removed once the
    record is written) so a killed sweep resumes inside a run, not only between runs.
    With `out=None` nothing is read or written.
    """
    configs = [configs] if dataclasses.is_dataclass(configs) else list(configs)
    paths = [record_path(out, config.name, config) if out is not None else None for config in configs]
    for config, path in zip(configs, paths):  # every configuration, record and the output folder before any work
        check_fields(config)
        if path is not None:
            existing_record(path, force)
    if out is not None:
        check_out_dir(out)
    if jobs > 1 and len(configs) > 1:
        return _run_parallel(kind, configs, run_one, out, force, progress, jobs, group)
    bar = tqdm(configs, desc=f"simulate {kind}", unit="run", disable=not progress or len(configs) < 2,
               file=sys.stderr)
    records, problems = [], []
    for config, path in zip(bar, paths):
        try:
            records.append(_run_or_skip(kind, config, path, run_one, force, progress, bar))
        except UserError as err:  # e.g. every learning rate diverged: the other runs still run
            if len(configs) == 1:
                raise
            problems.append(f"{config.name}: {err}")
    if problems:
        raise RunsFailed(problems, len(configs))
    return records


class RunsFailed(UserError):
    """Runs that stopped on a UserError, raised once every other run has finished (its
    record written); `problems` holds one line per run (kept through pickling, for --jobs)."""

    def __init__(self, problems: list[str], total: int):
        super().__init__(problems, total)
        self.problems, self.total = list(problems), total

    def __str__(self) -> str:
        return (f"{len(self.problems)} of {self.total} runs did not finish (" + " | ".join(self.problems)
                + "); every other run finished and its record is kept. Fix what is named and rerun the same "
                "command: finished runs are skipped.")


def _run_or_skip(kind, config, path, run_one, force, progress, bar) -> dict:
    """One configuration: its finished record, or a run under the record's lock."""
    if path is None:
        return _compute(kind, config, None, run_one, progress)
    done = existing_record(path, force)
    if done is None:
        with record_lock(path):
            done = existing_record(path, force)  # finished by another run while we looked?
            if done is None:
                record = _compute(kind, config, path.with_suffix(""), run_one, progress)
                write_record(path, record)
                for ckpt in path.parent.glob(f"{glob.escape(path.stem)}*.ckpt"):
                    ckpt.unlink()  # the record now holds everything the checkpoints did
                record["_path"] = str(path)
                return record
    if progress:
        bar.write(f"skip {config.name}: finished record {path} (pass --force to rerun)", file=sys.stderr)
    return done


def _compute(kind, config, prefix, run_one, progress) -> dict:
    start = time.perf_counter()
    with _flush_denormals():
        metrics, history, extra = run_one(config, progress, prefix)
    return make_record(kind, config.name, config, seed=getattr(config, "seed", 0), metrics=metrics,
                       history=history, wall_time_s=round(time.perf_counter() - start, 3), **extra)


def _run_parallel(kind, configs, run_one, out, force, progress, jobs, group) -> list[dict]:
    """`run_configs` over worker processes, one task per group; records come back in config order."""
    groups: dict = {}
    for index, config in enumerate(configs):
        groups.setdefault(group(config) if group else index, []).append(index)
    records: list = [None] * len(configs)
    problems: list[str] = []
    # spawn: a forked worker would inherit the parent's torch thread pools, which can deadlock
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_share_cores,
                             initargs=(jobs,)) as pool:
        tasks = {pool.submit(run_configs, kind, [configs[i] for i in members], run_one, out, force, False): members
                 for members in groups.values()}
        with tqdm(total=len(configs), desc=f"simulate {kind} ({jobs} jobs)", unit="run", disable=not progress,
                  file=sys.stderr) as bar:
            for task in as_completed(tasks):
                try:
                    for index, record in zip(tasks[task], task.result()):
                        records[index] = record
                except RunsFailed as err:  # the other workers' runs go on
                    problems += err.problems
                except UserError as err:  # a task of one run re-raises its own error
                    problems.append(f"{configs[tasks[task][0]].name}: {err}")
                bar.update(len(tasks[task]))
    if problems:
        raise RunsFailed(problems, len(configs))
    return records


def _share_cores(jobs: int) -> None:
    """A worker's torch threads: its share of the cores, so `jobs` workers do not each start a
    thread per core and oversubscribe them (each run's small products gain little from threads)."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))


@contextlib.contextmanager
def _flush_denormals():
    """Treat floats below ~1e-38 as 0 while a run trains and attacks.

    Once a small net interpolates its training set, cross-entropy gradients underflow into
    denormal floats, which x86 CPUs process many times slower: measured on the spheres net,
    150 epochs took 11.6 s with denormals and 1.7 s without.  Values that small do not move
    any weight, so only the time changes.  torch has no getter, so the default (off) is restored.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def add_common_arguments(parser: argparse.ArgumentParser, seeds_default: str = "0", seeds_note: str = "") -> None:
    """The flags every simulate command shares; `seeds_note` qualifies the seeds' default."""
    parser.add_argument("--seeds", default=None if seeds_note else seeds_default,
                        help=f"comma-separated seeds, one run (record) per seed (default: {seeds_default}{seeds_note})")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help=f"directory for the result records (default: {DEFAULT_OUT}/)")
    parser.add_argument("--force", action="store_true",
                        help="rerun and overwrite configurations whose record already exists")
    parser.add_argument("--json", action="store_true",
                        help="print the records as JSON on stdout instead of the table")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--jobs", type=_jobs, default=1,
                        help="worker processes running configurations in parallel (default 1; e.g. the number of "
                             "idle cores); each worker uses its share of the cores' torch threads")


def _jobs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"--jobs takes a number of worker processes from 1 to {MAX_JOBS}, got {text!r}")
    return int(text)


def parse_numbers(text: str, what: str) -> tuple[float, ...]:
    """`0.1,0.01` → (0.1, 0.01); anything that is not a number is a UserError naming `what`."""
    def number(item):
        try:
            return float(item)
        except ValueError:
            raise UserError(f"{what} takes comma-separated numbers such as 0.1,0.01; got {item!r}.") from None
    return tuple(parse_list(text, number))


def parse_methods(text: str, choices) -> list[str]:
    methods = parse_list(text)
    for m in methods:
        check_choice("method", m, choices)
    return methods


def check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}; choose from {', '.join(map(str, choices))}.")


def positive_overrides(args, names) -> dict:
    """The integer flags among `names` that were given, each checked to be positive."""
    out = {}
    for name in names:
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}.")
            out[name] = value
    return out


def print_json(records: list[dict]) -> None:
    json.dump([{k: v for k, v in r.items() if not k.startswith("_")} for r in records], sys.stdout, indent=1)
    sys.stdout.write("\n")


def print_lr_report(records: list[dict], header: str, sections: list[str], out, began: float) -> None:
    """The text report of an lr-rule experiment (linear, spheres): header, tables, the rule's caveat, time."""
    print(header)
    for section in sections:
        print(section)
    if not all(r["metrics"].get("interpolated", True) for r in records):
        print("note: for some runs no learning rate reached zero training error; the rule then kept the lowest.")
    print(f"wall time {time.perf_counter() - began:.0f}s; records in {out}/")


def group_means(records: list[dict], by: tuple[str, ...], metrics: dict[str, str],
                percent: tuple[str, ...] = ()) -> list[dict]:
    """One row per distinct value of the config keys `by`: the mean of each metric over the seeds.

    `metrics` maps a row column to a record metric; non-numeric values (None) are left out of
    the mean, and the `percent` columns are scaled to %.  Rows carry the `by` values (a
    `method` upper-cased for display), `seeds`, the chosen `lrs` and the summed wall time.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r["config"].get(k) for k in by), []).append(r)
    rows = []
    for key, recs in groups.items():
        row = dict(zip(by, key), seeds=len(recs), time=sum(r.get("wall_time_s") or 0 for r in recs))
        row["lrs"] = ",".join(f"{r['metrics']['lr']:g}" for r in recs if isinstance(r["metrics"].get("lr"), float))
        for column, metric in metrics.items():
            values = [r["metrics"].get(metric) for r in recs]
            values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            row[column] = (100 if column in percent else 1) * sum(values) / len(values) if values else None
        if "method" in row:
            row["method"] = str(row["method"]).upper()
        rows.append(row)
    return rows


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table; `columns` are (key, header, format) with format like '{:.3f}'."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append([("—" if row.get(key) is None else fmt.format(row[key])) for key, _, fmt in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
