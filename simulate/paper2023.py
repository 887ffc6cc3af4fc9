"""The 2023 paper's spheres figures as runs and tables (`python -m simulate.spheres --figure NAME`).

Each figure is a `realdata.synthetic.FIGURES_2023` grid: the 2023 preset varied along one
axis (ε, k or the margin), ST, AT and COAP, 5 seeds.  `figure_rows` reduces the records to
what the paper plots — per axis value and method the mean and standard error over seeds of
the standard and robust test errors, and for COAP the per-epoch sum of the unstable-ReLU
fraction on the training points, Σ_t UnstNeur(f_θt) — for the text table here and the
plots of `figures.paper2023`.
"""
from __future__ import annotations

import dataclasses
import json
import math

from realdata.synthetic import FIGURES_2023, FigureGrid
from simulate.runner import format_table

METRICS = {"std": "standard_error", "rob": "robust_error"}


def mean_se(values) -> tuple[float | None, float | None]:
    """Mean and standard error (sample std / √n) of the finite values; se is None below 2."""
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def unstable_sum(record: dict) -> float | None:
    """Σ over epochs of the training points' unstable-ReLU fraction (COAP bounds), or None."""
    values = [h.get("unstable_fraction") for h in record.get("history") or []]
    return sum(values) if values and all(isinstance(v, (int, float)) for v in values) else None


#: Fields that size a run rather than define the figure's setting (`simulate.spheres --figure`
#: lets the run-size flags change them): records at any size belong to the figure.
SIZE_FIELDS = ("d", "n", "n_test", "epochs", "batch_size", "eval_steps", "eval_restarts", "select_restarts", "lrs",
               "per_epoch_test")


def belongs(record: dict, grid: FigureGrid) -> bool:
    """Is the record one of `grid`'s runs (its base config on every field but the axis, method, seed, size)?"""
    c = record["config"]
    free = {grid.axis, "method", "seed", "per_epoch", *SIZE_FIELDS}
    expected = json.loads(json.dumps(dataclasses.asdict(grid.base)))  # as records store it (tuples as lists)
    return all(c.get(f) == v for f, v in expected.items() if f not in free)


def scale(record: dict) -> str:
    """The run-size fields of a record, as text (`epochs=30 n_test=1000 ...`)."""
    return " ".join(f"{f}={record['config'].get(f)}" for f in SIZE_FIELDS)


def figure_records(records: list[dict], grid: FigureGrid) -> tuple[list[dict], str | None]:
    """`grid`'s records at one size — the size with the most records — and that size's text."""
    mine = [r for r in records if belongs(r, grid)]
    if not mine:
        return [], None
    sizes: dict = {}
    for r in mine:
        sizes.setdefault(scale(r), []).append(r)
    best = max(sizes, key=lambda k: len(sizes[k]))
    return sizes[best], best


def figure_rows(records: list[dict], grid: FigureGrid) -> list[dict]:
    """Per (axis value, method): seeds, mean ± se of the errors (in %) and of Σ_t UnstNeur,
    from the figure's records at its most common size (`figure_records`)."""
    groups: dict = {}
    for r in figure_records(records, grid)[0]:
        groups.setdefault((r["config"][grid.axis], r["config"]["method"]), []).append(r)
    rows = []
    for (value, method), recs in groups.items():
        row = {"value": value, "method": method.upper(), "seeds": len(recs)}
        for short, metric in METRICS.items():
            mean, se = mean_se(100 * r["metrics"][metric] for r in recs)
            row[short], row[f"{short}_se"] = mean, se
        sums = [s for s in map(unstable_sum, recs) if s is not None]
        row["unst_sum"], row["unst_sum_se"] = mean_se(sums)
        rows.append(row)
    order = {m.upper(): i for i, m in enumerate(grid.methods)}
    return sorted(rows, key=lambda r: (r["value"], order.get(r["method"], 99)))


def _pm(mean, se, fmt="{:.1f}") -> str:
    if mean is None:
        return "—"
    return fmt.format(mean) + ("" if se is None else " ± " + fmt.format(se))


def figure_table(records: list[dict], name: str) -> str:
    grid = FIGURES_2023[name]
    rows = [dict(r, std_text=_pm(r["std"], r["std_se"]), rob_text=_pm(r["rob"], r["rob_se"]),
                 unst_text=_pm(r["unst_sum"], r["unst_sum_se"], "{:.2f}")) for r in figure_rows(records, grid)]
    size = figure_records(records, grid)[1]
    head = f"run size: {size}\n" if size else ""
    return head + format_table(rows, [("value", grid.axis, "{:.4g}"), ("method", "method", "{}"), ("seeds", "seeds", "{}"),
                               ("std_text", "std err % (± se)", "{}"), ("rob_text", "robust err % (± se)", "{}"),
                               ("unst_text", "Σ_t unstable (COAP)", "{}")])
