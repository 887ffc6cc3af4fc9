"""Drawing per-method curves (mean line, markers, ±1 std band) the same way in every figure."""
from __future__ import annotations

import matplotlib.ticker as mticker
import numpy as np

from figures.style import eps_formatter, method_sort_key, method_style


#: the legend's entry for a hollow marker (`plot_flagged`)
FLAGGED_LABEL = "hollow: collapsed or diverged run\n(left out of lines and summaries)"


def plot_flagged(ax, flagged: dict):
    """Hollow markers, one per collapsed or diverged run, from `{method: [(x, value), ...]}`.
    Returns the methods that had such a run."""
    drawn = []
    for method in sorted(flagged, key=method_sort_key):
        if flagged[method]:
            style = method_style(method)
            x, y = zip(*flagged[method])
            ax.plot(x, y, linestyle="none", marker=style.marker, markerfacecolor="none",
                    markeredgecolor=style.color, markeredgewidth=1.5)
            drawn.append(method)
    return drawn


def plot_method_curves(ax, by_method: dict, band: bool = True, markers: bool = True, clip=(0.0, 1.0),
                       flagged: dict | None = None):
    """One curve per method from `{method: [Point, ...]}`, methods in legend order.

    The band is mean ± one standard deviation over seeds, clipped to `clip` because
    errors and discrepancies live in [0, 1]; with one seed there is no band.
    `flagged` (`{method: [(x, value), ...]}`) adds the collapsed or diverged runs as
    hollow markers. Returns the methods drawn.
    """
    drawn = plot_flagged(ax, flagged or {})
    for method in sorted(by_method, key=method_sort_key):
        points = by_method[method]
        if not points:
            continue
        style = method_style(method)
        x = np.array([p.x for p in points])
        mean = np.array([p.mean for p in points])
        std = np.array([p.std for p in points])
        ax.plot(x, mean, color=style.color, linestyle=style.linestyle,
                marker=style.marker if markers else None, label=style.label,
                markevery=max(1, len(x) // 12) if markers else None)
        if band and np.any(std > 0):
            lo, hi = mean - std, mean + std
            if clip is not None:
                lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
            ax.fill_between(x, lo, hi, color=style.color, alpha=0.18, linewidth=0)
        drawn.append(method)
    return drawn


def format_eps_axis(ax, eps_values, label: str = "ε"):
    """Ticks at the budgets that were run, written as k/255 for image budgets."""
    eps_values = sorted(set(float(e) for e in eps_values))
    ax.set_xlabel(label)
    if 0 < len(eps_values) <= 8:
        ax.set_xticks(eps_values)
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(eps_formatter(eps_values)))


def legend_handles(methods, flagged: bool = False):
    """Proxy artists for a figure-level legend covering every method drawn in any panel,
    and, when `flagged`, the note that a hollow marker is a collapsed or diverged run."""
    from matplotlib.lines import Line2D
    handles = []
    for method in sorted(set(methods), key=method_sort_key):
        style = method_style(method)
        handles.append(Line2D([], [], color=style.color, linestyle=style.linestyle, marker=style.marker,
                              label=style.label))
    if flagged:
        handles.append(Line2D([], [], color="0.3", linestyle="none", marker="o", markerfacecolor="none",
                              label=FLAGGED_LABEL))
    return handles


def add_figure_legend(fig, methods, loc="outside upper center", flagged: bool = False):
    handles = legend_handles(methods, flagged)
    if handles:
        fig.legend(handles=handles, loc=loc, ncols=len(handles), frameon=False)
