"""The poster's centre: standard error, robust error and (robust) accuracy discrepancy
against ε, one column per dataset (and threat norm), AT against the certified methods.

Reads `train` records (realdata.train / realdata.sweep): config dataset, method, norm,
eps, seed; metrics standard_error, robust_error, acc_disc, robust_acc_disc.
"""
from __future__ import annotations

from figures.commands import MNIST_FORMAT, train_command
from figures.curves import add_figure_legend, format_eps_axis, plot_method_curves
from figures import claims
from figures.records import flagged_points, health_warning, pooled_settings, series, versus_at
from figures.spec import FigureSpec
from figures.style import dataset_label, dataset_sort_key, eps_formatter, message_panel, norm_label

KIND = "train"
METRICS = (
    ("standard_error", "Standard error"),
    ("robust_error", "Robust error"),
    ("acc_disc", "Accuracy discrepancy"),
    ("robust_acc_disc", "Robust accuracy\ndiscrepancy"),
)
GROUP_KEYS = ("dataset", "norm", "method")
#: what makes two training runs comparable in a claim (with ε): the same data and threat
CELL_KEYS = ("dataset", "norm")
#: the methods of the paper's poster (page 1); later methods go on page 2 (`figures.modern`)
PAPER_METHODS = ("st", "at", "coap", "crown-ibp", "ibp")


def paper_records(results) -> list:
    """The training records of the paper's methods."""
    return [r for r in results.of(KIND) if r["config"].get("method") in PAPER_METHODS]


def columns(records) -> list[tuple]:
    """(dataset, norm) pairs that have records, MNIST-format data first, as on the poster."""
    pairs = {(r["config"].get("dataset"), r["config"].get("norm")) for r in records}
    pairs = {p for p in pairs if p[0] is not None}
    return sorted(pairs, key=lambda p: (dataset_sort_key(p[0]), str(p[1])))


def missing_columns(records) -> list[str]:
    """The poster's columns (MNIST-format data, CIFAR-10) that have no records at all."""
    datasets = {r["config"].get("dataset") for r in records}
    missing = []
    if not datasets & set(MNIST_FORMAT):
        missing.append("digits")
    if "cifar10" not in datasets:
        missing.append("cifar10")
    return missing


def grid_series(records, metrics=METRICS) -> dict:
    """`{metric: {(dataset, norm, method): [Point, ...]}}` — mean ± std over seeds per ε."""
    return {metric: series(records, GROUP_KEYS, "eps", metric) for metric, _ in metrics}


def grid_flagged(records, metrics=METRICS) -> dict:
    """`{metric: {(dataset, norm, method): [(ε, value), ...]}}` of collapsed or diverged runs."""
    return {metric: flagged_points(records, GROUP_KEYS, "eps", metric) for metric, _ in metrics}


def column_title(dataset, norm, several_norms: bool) -> str:
    return f"{dataset_label(dataset)} ({norm_label(norm)})" if several_norms else dataset_label(dataset)


def draw_grid(fig, records, metrics=METRICS, legend_loc="outside upper center", results_dir="results",
              poster_columns: bool = True) -> list[str]:
    """Fill `fig` with the grid; with `poster_columns`, a poster column without records shows
    the command that produces them (spanning the column) instead of plots."""
    cols = columns(records)
    missing = missing_columns(records) if poster_columns else []
    several_norms = len({n for _, n in cols}) > 1
    data, flagged = grid_series(records, metrics), grid_flagged(records, metrics)
    layout = [("data", c) for c in cols] + [("missing", d) for d in missing]
    gs = fig.add_gridspec(len(metrics), len(layout))
    methods_drawn, lines = [], []
    for j, (what, column) in enumerate(layout):
        if what == "missing":
            command = train_command(column, results_dir)
            title = dataset_label(column) if column == "cifar10" else "MNIST-format data"
            message_panel(fig.add_subplot(gs[:, j]), title,
                          ["No training records yet (kind 'train').", "Produce them with:"],
                          command.replace(" --eps", "\n--eps"))
            lines.append(f"error grid: no {dataset_label(column)} records; run: {command}")
            continue
        dataset, norm = column
        eps_values = ([p.x for key, pts in data[metrics[0][0]].items() if key[:2] == column for p in pts]
                      + [x for key, pts in flagged[metrics[0][0]].items() if key[:2] == column for x, _ in pts])
        first = None
        for i, (metric, label) in enumerate(metrics):
            ax = fig.add_subplot(gs[i, j], sharex=first)
            first = first or ax
            by_method = {m: pts for (d, n, m), pts in data[metric].items() if (d, n) == column}
            hollow = {m: pts for (d, n, m), pts in flagged[metric].items() if (d, n) == column}
            methods_drawn += plot_method_curves(ax, by_method, flagged=hollow)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.set_title(column_title(dataset, norm, several_norms))
            if j == 0:
                ax.set_ylabel(label)
            if i == len(metrics) - 1:
                format_eps_axis(ax, eps_values, f"ε ({norm_label(norm)})")
            else:
                ax.tick_params(labelbottom=False)
    warning = health_warning(records)
    add_figure_legend(fig, methods_drawn, legend_loc, flagged=warning is not None)
    return (lines + claim_lines(records) + summarize(data, cols, metrics) + ([warning] if warning else [])
            + pooled_settings(records, ("dataset", "norm", "method", "eps")))


def claim_lines(records) -> list[str]:
    """How often each certified method's robust error is above AT's over (dataset, norm, ε)."""
    return claims.claim_lines(records, CELL_KEYS)


def heading(records) -> str:
    """The grid's heading: what its records show about certified training against AT."""
    return claims.heading(records, CELL_KEYS, "", "Errors and fairness against ε (no cell compares AT with a "
                          "certified method yet)")


def summarize(data, cols, metrics=METRICS) -> list[str]:
    """Per column and metric: each method against AT at the largest ε both reached."""
    lines = []
    for dataset, norm in cols:
        for metric, label in metrics:
            curves = {m: pts for (d, n, m), pts in data[metric].items() if (d, n) == (dataset, norm)}
            line = versus_at(curves, lambda x: eps_formatter([x])(x))
            if line:
                lines.append(f"{dataset_label(dataset)} {norm_label(norm)}, {label.replace(chr(10), ' ').lower()} {line}")
    return lines


def draw(fig, results) -> list[str]:
    return draw_grid(fig, paper_records(results), results_dir=results.directory)


SPEC = FigureSpec("error_grid", "Errors and fairness against ε", (11, 11), draw)
