"""Harm against tightness: does certified training hurt less as its relaxation tightens?

One panel per synthetic experiment (spheres, linear). x: the relaxation's looseness on the trained
model — the record's `tightness`, the mean gap between the margin the exact line search (or the
attack) finds and the certified margin (`simulate.tightness`); AT sits at 0 by definition (it trains
on the attack, no relaxation). y: the method's robust error minus AT's in the same cell (same
experiment settings, ε and seed). One marker per method and budget: the mean over seeds, bars one
standard deviation each way.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from figures.commands import quick_command
from figures.records import config_value, healthy, metric_value
from figures.spec import FigureSpec
from figures.style import message_panel, method_sort_key, method_style
from realdata.methods import CERTIFIED_METHODS

#: Per experiment (record kind): the config keys that make a cell (AT's run is looked up in it) and a title.
EXPERIMENTS = {
    "spheres": (("preset", "norm", "k", "margin", "eps", "seed"), "Concentric spheres"),
    "linear": (("n", "d", "gamma", "eps", "seed"), "Linear distribution"),
}


def command(kind: str) -> str:
    """The quick grid of `kind` with AT and every method that trains on a relaxation (the registry's)."""
    return quick_command(kind, methods=("at", *CERTIFIED_METHODS))


def harm_points(records, cell_keys) -> dict:
    """{(method, eps): [(looseness, robust-error gap to AT), ...] over seeds} for healthy records."""
    records = healthy(records)
    at = {tuple(str(config_value(r, k)) for k in cell_keys): metric_value(r, "robust_error")
          for r in records if config_value(r, "method") == "at"}
    points = defaultdict(list)
    for r in records:
        method = config_value(r, "method")
        cell = tuple(str(config_value(r, k)) for k in cell_keys)
        base, error = at.get(cell), metric_value(r, "robust_error")
        looseness = 0.0 if method == "at" else metric_value(r, "tightness")
        if base is None or error is None or looseness is None:
            continue
        points[(method, config_value(r, "eps"))].append((looseness, error - base))
    return dict(points)


def draw_panel(ax, points, title) -> list[str]:
    lines = []
    for (method, eps), values in sorted(points.items(), key=lambda kv: (method_sort_key(kv[0][0]), kv[0][1])):
        x, y = np.asarray(values, dtype=float).T
        style = method_style(method)
        spread = (lambda v: v.std(ddof=1) if len(v) > 1 else 0.0)
        ax.errorbar(x.mean(), 100 * y.mean(), xerr=spread(x), yerr=100 * spread(y), color=style.color,
                    marker=style.marker, linestyle="none", capsize=3, label=style.label)
        ax.annotate(f"ε={eps:g}", (x.mean(), 100 * y.mean()), textcoords="offset points", xytext=(4, 4),
                    fontsize="x-small", color=style.color)
        lines.append(f"{title}: {style.label} ε={eps:g}: looseness {x.mean():.3g}, robust error − AT "
                     f"{100 * y.mean():+.2f} pp over {len(x)} seed(s)")
    ax.axhline(0, color="0.5", linewidth=1)
    ax.set_xlabel("looseness: mean (found − certified) margin on test points")
    ax.set_ylabel("robust error − AT's (pp)")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize="small")
    return lines


def draw(fig, results) -> list[str]:
    axes = fig.subplots(1, len(EXPERIMENTS))
    lines = []
    for ax, (kind, (cell_keys, title)) in zip(np.atleast_1d(axes), EXPERIMENTS.items()):
        points = harm_points(results.of(kind), cell_keys)
        if not any(m != "at" for m, _ in points):
            message_panel(ax, title, ["No certified run with a tightness measure and a matching AT run yet."],
                          command(kind))
            lines.append(f"{title}: no points")
            continue
        lines += draw_panel(ax, points, title)
    return lines


SPEC = FigureSpec("tightness", "Harm against relaxation tightness", (14, 6), draw)
