"""The 2023 paper's concentric-spheres figures, one per `realdata.synthetic.FIGURES_2023` grid.

    python -m figures.paper2023 --figure 2023-k --results results --out figures-out
    python -m figures.paper2023                      # every 2023 figure that has records

Each figure has three panels: standard and robust test error against the figure's axis
(ε, k or the margin 1/γ) per method, mean ± standard error over seeds, and COAP's
per-epoch sum of unstable ReLUs Σ_t UnstNeur(f_θt) as bars.  `spec(name)` is the
`FigureSpec` the poster (or anyone) can render into a Figure or SubFigure; the numbers
come from `simulate.paper2023.figure_rows`, the same reduction as the command's table.
"""
from __future__ import annotations

import argparse
import sys

from figures.records import load_results
from figures.spec import FigureSpec, render
from figures.style import message_panel, method_style
from realdata.errors import UserError, run_main
from realdata.synthetic import FIGURES_2023
from simulate.paper2023 import figure_records, figure_rows

AXIS_LABELS = {"eps": "ε", "k": "k (signal-aligned directions)", "margin": "1/γ (inverse margin)"}


def _x(grid, value):
    return 1 / value if grid.axis == "margin" else value


def command(name: str, out: str = "results") -> str:
    return f"python -m simulate.spheres --figure {name} --out {out}"


def draw_figure(fig, results, name: str) -> list[str]:
    """Fill `fig` (a Figure or SubFigure) with figure `name`; returns its summary lines."""
    grid = FIGURES_2023[name]
    rows = figure_rows(results.of("spheres"), grid)
    axes = fig.subplots(1, 3)
    fig.suptitle(f"Spheres 2023 — {grid.title}")
    if not rows:
        for ax in axes:
            ax.set_axis_off()
        message_panel(axes[1], "no records", [f"no spheres records of {name}"], command(name, results.directory))
        return [f"{name}: no records; run: {command(name, results.directory)}"]
    for ax, metric, label in ((axes[0], "std", "standard error (%)"), (axes[1], "rob", "robust error (%)")):
        for method in grid.methods:
            points = [r for r in rows if r["method"] == method.upper()]
            if not points:
                continue
            style = method_style(method)
            ax.errorbar([_x(grid, p["value"]) for p in points], [p[metric] for p in points],
                        yerr=[p[f"{metric}_se"] or 0.0 for p in points], color=style.color, marker=style.marker,
                        linestyle=style.linestyle, label=style.label, capsize=3)
        ax.set_xlabel(AXIS_LABELS[grid.axis])
        ax.set_ylabel(label)
    axes[0].legend()
    coap = [r for r in rows if r["method"] == "COAP" and r["unst_sum"] is not None]
    labels = [f"{_x(grid, r['value']):.3g}" for r in coap]
    axes[2].bar(labels, [r["unst_sum"] for r in coap], yerr=[r["unst_sum_se"] or 0.0 for r in coap],
                color=method_style("coap").color, capsize=3)
    axes[2].set_xlabel(AXIS_LABELS[grid.axis])
    axes[2].set_ylabel("Σ_t unstable fraction (COAP, train)")
    seeds = sorted({r["seeds"] for r in rows})
    return [f"{name}: {len(rows)} (value, method) cells, {'/'.join(map(str, seeds))} seeds each",
            f"  run size: {figure_records(results.of('spheres'), grid)[1]}"] + [
        f"  {grid.axis}={r['value']:.4g} {r['method']}: std {r['std']:.1f}%, robust {r['rob']:.1f}%"
        for r in rows]


def spec(name: str) -> FigureSpec:
    if name not in FIGURES_2023:
        raise UserError(f"unknown 2023 figure {name!r}; choose from {', '.join(FIGURES_2023)}.")
    return FigureSpec(name.replace("-", "_"), f"Spheres {FIGURES_2023[name].title}", (15, 4.5),
                      lambda fig, results: draw_figure(fig, results, name))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures.paper2023", description=__doc__.split("\n\n")[0],
                                epilog="Figures: " + "; ".join(f"{k}: {g.title}" for k, g in FIGURES_2023.items()))
    p.add_argument("--figure", choices=tuple(FIGURES_2023), action="append", default=None,
                   help="a figure to draw (repeatable; default: every one)")
    p.add_argument("--results", default="results", help="directory of result records (default: results/)")
    p.add_argument("--out", default="figures-out", help="directory for the PNG and PDF files (default: figures-out/)")
    p.add_argument("--dpi", type=int, default=150, help="PNG resolution (default: 150)")
    args = p.parse_args(argv)
    results = load_results(args.results)
    for name in args.figure or FIGURES_2023:
        rendered = render(spec(name), results, args.out, dpi=args.dpi)
        print("\n".join(rendered.summary))
        print("  " + ", ".join(map(str, rendered.paths)))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
