"""The theorem's distribution with a trained two-layer net (workshop Fig 6): standard and
robust error against ε for each training-set size n.

Reads `linear` records (simulate.linear): config n, method, eps, seed; metrics
standard_error, robust_error.
"""
from __future__ import annotations

from figures.commands import linear_command
from figures.curves import add_figure_legend, format_eps_axis, plot_method_curves
from figures import claims
from figures.records import flagged_points, health_warning, pooled_settings, series, versus_at
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
    hollow = {m: pts for (nn, m), pts in flagged_points(records, ("n", "method"), "eps", metric).items() if nn == n}
    drawn = plot_method_curves(ax, curves, flagged=hollow)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(label)
    format_eps_axis(ax, [p.x for pts in curves.values() for p in pts] + [x for pts in hollow.values() for x, _ in pts],
                    "ε (along the signal e₁)")
    if title:
        ax.set_title(f"Linear distribution, n = {n:g}")
    return drawn


#: a linear run is compared with AT's at the same training-set size and ε
CELL_KEYS = ("n",)


def _label(cell) -> str:
    return f"linear n={cell[0]:g}"


def claim_lines(records) -> list[str]:
    return claims.claim_lines(records, CELL_KEYS, label=_label)


def heading(records) -> str:
    return claims.heading(records, CELL_KEYS, "The theorem's data, two-layer net",
                          "The theorem's data, two-layer net: no run compares AT with COAP yet", label=_label)


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
    warning = health_warning(records)
    add_figure_legend(fig, drawn, flagged=warning is not None)
    return claim_lines(records) + summarize(records) + ([warning] if warning else []) + pooled_settings(records, ("n", "method", "eps"))


SPEC = FigureSpec("linear", "Linear distribution", (10, 7), draw)
