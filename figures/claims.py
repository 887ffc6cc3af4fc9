"""The findings a poster states, computed from the records it sits over, with their counts.

A finding compares a method with AT cell by cell (a cell: the keys that make two runs
comparable, e.g. dataset, norm and ε), on the mean over the healthy seeds of each
(`figures.records.series` leaves collapsed and diverged runs out). Headings are chosen by
the counts, so records that contradict the paper produce a heading that says so.
"""
from __future__ import annotations

from dataclasses import dataclass

from figures.records import series
from figures.style import dataset_label, method_sort_key, method_style
from realdata.methods import CERTIFIED_METHODS

BASELINE = "at"
#: the paper's claim: a relaxation-trained method is worse than AT
PAPER_CLAIM = "certified training has higher robust error than AT"


@dataclass(frozen=True)
class Tally:
    """How often `method`'s metric is above the baseline's over the cells both reached."""
    method: str
    metric: str
    above: int
    cells: int
    where: tuple  # labels of the places (datasets, settings) the cells come from


def cell_means(records, cell_keys: tuple, metric: str, x: str = "eps") -> dict:
    """`{(cell, method): mean}` over healthy seeds; `cell` is the config values of
    `cell_keys` followed by `x`."""
    out = {}
    for group, points in series(records, cell_keys + ("method",), x, metric).items():
        for p in points:
            out[(group[:-1] + (p.x,), group[-1])] = p.mean
    return out


def tally(records, cell_keys: tuple, metric: str, method: str, baseline: str = BASELINE,
          label=lambda cell: dataset_label(cell[0])) -> Tally:
    """Count the cells where `method`'s mean `metric` is strictly above `baseline`'s."""
    means = cell_means(records, cell_keys, metric)
    shared = sorted({cell for cell, m in means if m == method and (cell, baseline) in means}, key=str)
    above = sum(means[(cell, method)] > means[(cell, baseline)] for cell in shared)
    where = tuple(dict.fromkeys(label(cell) for cell in shared))
    return Tally(method, metric, above, len(shared), where)


def tallies(records, cell_keys: tuple, metric: str, baseline: str = BASELINE, **kwargs) -> list[Tally]:
    """One tally per certified method (a relaxation trains it) that shares a cell with the
    baseline; ST and other empirical methods are not part of the paper's claim."""
    methods = sorted({r["config"].get("method") for r in records} & set(CERTIFIED_METHODS), key=method_sort_key)
    found = [tally(records, cell_keys, metric, m, baseline, **kwargs) for m in methods]
    return [t for t in found if t.cells]


def tally_line(t: Tally, baseline: str = BASELINE) -> str:
    """`"COAP's robust error is above AT's in 7 of 8 cells (Digits (8×8), CIFAR-10)"`."""
    name = t.metric.replace("_", " ")
    return (f"{method_style(t.method).label}'s {name} is above {method_style(baseline).label}'s in "
            f"{t.above} of {t.cells} cell{'s' if t.cells != 1 else ''} ({', '.join(t.where)})")


def verdict(found: list[Tally]) -> str | None:
    """The paper's claim against the pooled counts: "agree", "mixed" or "disagree"; None
    without a comparison. Agreement needs at least three in four cells, disagreement
    fewer than half."""
    above, cells = sum(t.above for t in found), sum(t.cells for t in found)
    if not cells:
        return None
    share = above / cells
    return "agree" if share >= 0.75 else "disagree" if share < 0.5 else "mixed"


def finding(found: list[Tally], growth: tuple[int, int] = (0, 0)) -> str | None:
    """What the pooled counts show, in words chosen by `verdict`; None without a comparison.
    `growth` is (curves whose gap grows with ε, curves with two budgets or more)."""
    state = verdict(found)
    if state is None:
        return None
    above, cells = sum(t.above for t in found), sum(t.cells for t in found)
    methods = "/".join(method_style(t.method).label for t in found)
    counted = f"{methods} robust error above AT's in {above} of {cells} cells"
    if growth[1]:
        counted += f", the gap growing with ε in {growth[0]} of {growth[1]} curves"
    return {"agree": f"certified training falls behind AT: {counted}",
            "mixed": f"mixed evidence: {counted}",
            "disagree": f"these records disagree with the paper: {counted}"}[state]


def pooled_growth(records, cell_keys: tuple, metric: str, found: list[Tally]) -> tuple[int, int]:
    """`gap_trend` summed over the methods of `found`."""
    trends = [gap_trend(records, cell_keys, metric, t.method) for t in found]
    return sum(g for g, _ in trends), sum(c for _, c in trends)


def heading(records, cell_keys: tuple, prefix: str, empty: str, **kwargs) -> str:
    """`"<prefix>: <finding>"` on robust error against AT, or `empty` when no cell compares."""
    found = tallies(records, cell_keys, "robust_error", **kwargs)
    text = finding(found, pooled_growth(records, cell_keys, "robust_error", found))
    if text is None:
        return empty
    return f"{prefix}: {text}" if prefix else text[0].upper() + text[1:]


def claim_lines(records, cell_keys: tuple, **kwargs) -> list[str]:
    """Per certified method, `tally_line` on robust error with how its gap to AT changes
    with ε; then, where the pooled counts do not support the paper, a line saying so."""
    found = tallies(records, cell_keys, "robust_error", **kwargs)
    lines = []
    for t in found:
        grown, curves = gap_trend(records, cell_keys, "robust_error", t.method)
        lines.append(tally_line(t) + (f"; its gap to AT grows with ε in {grown} of {curves} curves" if curves else ""))
    state = verdict(found)
    if state in ("mixed", "disagree"):
        above, cells = sum(t.above for t in found), sum(t.cells for t in found)
        where = ", ".join(dict.fromkeys(w for t in found for w in t.where))
        lines.append(f"The paper says {PAPER_CLAIM}; in these records ({where}) that holds in only {above} of "
                     f"{cells} method-cell comparisons{', fewer than half' if state == 'disagree' else ''}.")
    return lines


def gap_trend(records, cell_keys: tuple, metric: str, method: str, baseline: str = BASELINE) -> tuple[int, int]:
    """(curves whose gap to the baseline is larger at their largest ε than at their
    smallest, curves with at least two shared budgets): "the gap grows with ε"."""
    means = cell_means(records, cell_keys, metric)
    curves: dict = {}
    for (cell, m), value in means.items():
        if m == method and (cell, baseline) in means:
            curves.setdefault(cell[:-1], []).append((cell[-1], value - means[(cell, baseline)]))
    grown = [pts[-1][1] > pts[0][1] for pts in (sorted(v) for v in curves.values()) if len(pts) > 1]
    return sum(grown), len(grown)


def equal_across_methods(records, metric: str, tolerance: float = 1e-3) -> list[str]:
    """Budgets at which every method's mean `metric` is the same (within `tolerance`):
    such a measure does not separate the methods, and a figure should say so."""
    by_eps: dict = {}
    for (method,), points in series(records, ("method",), "eps", metric).items():
        for p in points:
            by_eps.setdefault(p.x, {})[method] = p.mean
    lines = []
    for eps, values in sorted(by_eps.items()):
        if len(values) > 1 and max(values.values()) - min(values.values()) <= tolerance:
            names = ", ".join(method_style(m).label for m in sorted(values, key=method_sort_key))
            lines.append(f"the {metric.replace('_', ' ')} is the same for {names} at ε={eps:g} "
                         f"({next(iter(values.values())):.3f}): it does not separate the methods here")
    return lines
