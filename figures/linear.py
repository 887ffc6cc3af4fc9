"""The theorem's distribution with a trained two-layer net (workshop Fig 6): standard and
robust error against ε for each training-set size n.

Reads `linear` records (simulate.linear): config n, method, eps, seed; metrics
standard_error, robust_error.
"""
from __future__ import annotations

from figures.commands import linear_command
from figures.curves import add_figure_legend, format_eps_axis, plot_method_curves
from figures.records import pooled_settings, series, versus_at
from figures.spec import FigureSpec
from figures.style import message_panel

KIND = "linear"
METRICS = (("standard_error", "Standard error"), ("robust_error", "Robust error"))


def sizes(records) -> list:
    return sorted({r["config"]["n"] for r in records if isinstance(r["config"].get("n"), (int, float))})


def curves_for(records, n, metric) -> dict:
    return {m: pts for (nn, m), pts in series(records, ("n", "method"), "eps", metric).items() if nn == n}


def draw_panel(ax, records, n, metric, label, title=True):
    curves = curves_for(records, n, metric)
    drawn = plot_method_curves(ax, curves)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(label)
    format_eps_axis(ax, [p.x for pts in curves.values() for p in pts], "ε (along the signal e₁)")
    if title:
        ax.set_title(f"Linear distribution, n = {n:g}")
    return drawn


def summarize(records) -> list[str]:
    lines = []
    for n in sizes(records):
        for metric, label in METRICS:
            curves = curves_for(records, n, metric)
            line = versus_at(curves)
            if line:
                lines.append(f"linear n={n:g} {label.lower()} {line}")
    return lines


def draw(fig, results) -> list[str]:
    records = results.of(KIND)
    ns = sizes(records)
    if not ns:
        message_panel(fig.add_subplot(), "Linear distribution (theorem's data, two-layer net)",
                      ["No linear records yet (kind 'linear').", "Produce them with:"],
                      linear_command(results.directory))
        return ["linear: no linear records; run: " + linear_command(results.directory)]
    axes = fig.subplots(len(METRICS), len(ns), squeeze=False)
    drawn = []
    for j, n in enumerate(ns):
        for i, (metric, label) in enumerate(METRICS):
            drawn += draw_panel(axes[i, j], records, n, metric, label, title=(i == 0))
    add_figure_legend(fig, drawn)
    return summarize(records) + pooled_settings(records, ("n", "method", "eps"))


SPEC = FigureSpec("linear", "Linear distribution", (10, 7), draw)
