"""From result records to the numbers a figure plots: load, select, group over seeds.

Every figure reads records through here, so "mean ± spread over seeds" means the same
thing everywhere: the mean and the sample standard deviation (ddof = 1; 0 for one seed)
of the runs that agree on the grouping keys.

A run that collapsed or diverged (`realdata.health.record_health`) is not a result: the
means, bands and every summary line leave it out (`series`, `history_series`), the
figures draw it as a hollow marker (`flagged_points`) and `health_warning` names it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from figures.style import eps_formatter, method_sort_key, method_style, norm_label
from realdata.errors import UserError, parse_eps
from realdata.health import health_warning as runs_warning
from realdata.health import record_health
from realdata.results import load_records


@dataclass
class Results:
    """All readable records of a results directory, split by kind, and what went wrong."""
    directory: Path
    by_kind: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    def of(self, kind: str) -> list:
        return self.by_kind.get(kind, [])

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_kind.values())

    def flagged(self) -> list:
        """Every record, of any kind, that collapsed or diverged."""
        return [r for recs in self.by_kind.values() for r in recs if record_health(r)]


def load_results(directory, where: dict | None = None) -> Results:
    """Load every record under `directory`; unreadable files become `problems`, not errors.

    A record copied twice (same config hash, which includes the seed) counts once — the
    newest copy — so a duplicated file cannot shrink the spread or double a seed's weight.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--results {directory} is a file; pass the directory the experiments wrote their records to.")
    records, problems = load_records(directory)
    if directory.is_dir() and not records and not problems:
        problems.append(f"no result records in {directory}; "
                        "every data panel shows the command that produces its records.")
    newest = {}
    for rec in records:
        key = (rec["kind"], rec.get("config_hash"), rec.get("seed"))
        if key not in newest or str(rec.get("created", "")) > str(newest[key].get("created", "")):
            newest[key] = rec
    results = Results(directory, problems=problems)
    for key in where or {}:
        if newest and not any(key in r.get("config", {}) for r in newest.values()):
            problems.append(f"no record has the config key {key!r}, so --where {key}=... selects nothing; "
                            "check its spelling against a record's \"config\".")
    for rec in select(newest.values(), where or {}):
        results.by_kind.setdefault(rec["kind"], []).append(rec)
    return results


def parse_where(items) -> dict:
    """`["preset=quick", "norm=l2"]` → `{"preset": "quick", "norm": "l2"}`."""
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UserError(f"cannot read the filter {item!r}; write it as KEY=VALUE, e.g. --where preset=quick.")
        out[key.strip()] = value.strip()
    return out


def _matches(value, wanted: str) -> bool:
    """Compare a config value with a command-line string: numbers numerically, rest as text."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() == wanted.lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), parse_eps(wanted), rel_tol=1e-9, abs_tol=1e-12)
        except UserError:
            return False
    return str(value) == wanted


def select(records, where: dict) -> list:
    """The records whose config matches every `key=value` of `where` that it has.

    A record without the key is kept: `recipe=quick` selects among training records and
    leaves the simulate kinds (which have no recipe) alone.
    """
    return [r for r in records
            if all(k not in r.get("config", {}) or _matches(r["config"][k], v) for k, v in where.items())]


def config_value(record, key):
    return record.get("config", {}).get(key)


def metric_value(record, metric: str):
    """A finite float metric, or None when absent or not a number (e.g. a skipped evaluation)."""
    value = record.get("metrics", {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Point:
    x: float
    mean: float
    std: float
    n: int


def _summary(x, values) -> Point:
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return Point(float(x), float(values.mean()), std, len(values))


def _key(value):
    # Lists (e.g. a tuple of directions) are not hashable; their text is a faithful key.
    return tuple(value) if isinstance(value, list) else value


def healthy(records) -> list:
    """The records that are results: neither collapsed nor diverged."""
    return [r for r in records if not record_health(r)]


def run_label(record) -> str:
    """`"digits AT ℓ2 ε=0.5 seed 1"`: which run a record is, in a warning or a table."""
    c = record.get("config", {})
    parts = [str(c.get("dataset") or c.get("preset") or record.get("kind", "?"))]
    if c.get("method"):
        parts.append(method_style(c["method"]).label)
    if c.get("norm"):
        parts.append(norm_label(c["norm"]))
    if isinstance(c.get("eps"), (int, float)):
        parts.append(f"ε={eps_formatter([c['eps']])(c['eps'])}")
    parts.append(f"seed {record.get('seed', c.get('seed'))}")
    return " ".join(parts)


def health_warning(records) -> str | None:
    """`realdata.health.health_warning` with the figures' run labels."""
    return runs_warning(records, run_label)


def flagged_points(records, by: tuple, x: str, metric: str) -> dict:
    """`{group: [(x, value), ...]}` of the collapsed or diverged runs, one point per run."""
    out = defaultdict(list)
    for rec in records:
        value, xv = metric_value(rec, metric), config_value(rec, x)
        if record_health(rec) and value is not None and isinstance(xv, (int, float)):
            out[tuple(_key(config_value(rec, k)) for k in by)].append((float(xv), value))
    return dict(out)


def series(records, by: tuple, x: str, metric: str) -> dict:
    """`{group: [Point, ...] sorted by x}`: the metric's mean ± std over seeds per x value.

    `group` is the tuple of the records' config values for the keys in `by`. Records
    without a finite value of `metric` or of `x`, and collapsed or diverged runs, are
    left out.
    """
    cells = defaultdict(list)
    for rec in healthy(records):
        value, xv = metric_value(rec, metric), config_value(rec, x)
        if value is None or not isinstance(xv, (int, float)):
            continue
        group = tuple(_key(config_value(rec, k)) for k in by)
        cells[(group, float(xv))].append(value)
    out = defaultdict(list)
    for (group, xv), values in sorted(cells.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        out[group].append(_summary(xv, values))
    return dict(out)


def history_series(records, by: tuple, key: str) -> dict:
    """`{group: [Point(epoch, mean, std, n), ...]}` of a per-epoch history entry over seeds
    (collapsed or diverged runs left out)."""
    cells = defaultdict(list)
    for rec in healthy(records):
        group = tuple(_key(config_value(rec, k)) for k in by)
        for row in rec.get("history") or []:
            value, epoch = row.get(key), row.get("epoch")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                    and isinstance(epoch, (int, float)):
                cells[(group, float(epoch))].append(float(value))
    out = defaultdict(list)
    for (group, epoch), values in sorted(cells.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        out[group].append(_summary(epoch, values))
    return dict(out)


def pooled_settings(records, keys: tuple) -> list[str]:
    """Warnings for groups that pool runs whose configs differ in more than the seed.

    Averaging a quick run with a paper-recipe run would hide both; the figure still
    draws, and the warning names the differing keys and the `--where` filter to fix it.
    """
    configs = defaultdict(list)
    for rec in records:
        group = tuple(_key(config_value(rec, k)) for k in keys)
        configs[group].append({k: v for k, v in rec.get("config", {}).items() if k != "seed"})
    warnings = []
    for group, cfgs in configs.items():
        differing = sorted({k for c in cfgs for k in c if any(c.get(k) != d.get(k) for d in cfgs)})
        if differing:
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, group))
            warnings.append(f"runs pooled at {label} differ in {', '.join(differing)}; "
                            f"choose one with --where {differing[0]}=VALUE.")
    return warnings


def versus_at(curves: dict, fmt=lambda x: f"{x:g}"):
    """`"at ε=X: AT a, COAP b (+d), …"` at the largest ε where AT and another method both have
    a point — the figures' claim in numbers — or None when there is no such ε.

    `curves` is `{method: [Point, ...]}`; `fmt` writes the ε.
    """
    at = {p.x: p for p in curves.get("at", [])}
    others = {m: {p.x: p for p in pts} for m, pts in curves.items() if m != "at"}
    shared = [x for x in at if any(x in pts for pts in others.values())]
    if not shared:
        return None
    x = max(shared)
    parts = [f"AT {at[x].mean:.3f}"]
    for method in sorted(others, key=method_sort_key):
        if x in others[method]:
            value = others[method][x].mean
            parts.append(f"{method_style(method).label} {value:.3f} ({value - at[x].mean:+.3f})")
    return f"at ε={fmt(x)}: " + ", ".join(parts) + f"  [seeds: {at[x].n}]"
