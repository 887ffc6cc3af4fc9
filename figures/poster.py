"""`python -m figures.poster`: every figure from the result records, and the A0 poster.

The poster follows the original's three columns (docs/PAPER.md §5): left, the robust objective,
lower vs upper bound (with the relaxation picture) and the fairness formula; centre, the
grid of error curves; right, the spheres intuition and the theorem. Each data panel is
drawn by the same function as its stand-alone figure.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

from figures import beyond_coap, error_grid, linear, modern, paper2023, relaxation, spheres, theorem, tightness
from figures.commands import POSTER_COMMAND, QUICK_TRAIN_GRID, describe_quick_grid, linear_command
from figures.curves import legend_handles
from figures.records import Results, health_warning, load_results, parse_where
from figures.spec import render
from figures.style import message_panel, method_style, new_figure, save_figure, style_context
from figures.text_panels import BOUNDS, FAIRNESS, HEADER_COLOR, OBJECTIVE, THEOREM, draw_blocks
from figures.run_missing import check_datasets, run_missing
from realdata.cli import Parser
from realdata.errors import UserError, parse_list, run_main
from realdata.synthetic import FIGURES_2023
from realdata.validate import check_number, check_out_dir

A0_LANDSCAPE_IN = (1189 / 25.4, 841 / 25.4)
# Every size of the stand-alone style times this: body text ≈ 24 pt, readable from ~2 m.
POSTER_SCALE = 2.2
COLUMN_RATIOS = (0.95, 1.6, 1.25)
TITLE = "Certified defences hurt generalisation"
AUTHORS = "Piersilvio De Bartolomeis, Jacob Clarysse, Fanny Yang, Amartya Sanyal — ETH Zürich"
FIGURE_NAMES = (("error_grid", "spheres", "linear", "theorem", "relaxation", "modern_methods", "relaxation_gaps",
                 "dynamics", "tightness") + tuple(paper2023.spec(name).name for name in FIGURES_2023))
PAGE_TWO_TITLE = "After the paper: later certified training, the 2023 spheres study, and relaxations beyond COAP"
#: Page 2's bottom row: is the harm the relaxation's looseness? (figure names of `figure_specs`)
THEORY_ROW = ("relaxation_gaps", "dynamics", "tightness")
THEORY_HEADING = ("Is the harm the relaxation's looseness? Every relaxation on the one-neuron model, one step and "
                  "many (theory), and each method's robust-error gap to AT against its measured looseness (records)")
PAGES = (1, 2)
#: The theory row's style scale: its nine panels share one band of the page, so smaller type than the rest.
THEORY_ROW_SCALE = 1.3


#: Upper limits of the resolution flags: beyond them a figure takes minutes and gigabytes.
MAX_DPI = 1200
MAX_THEORY_GRID = 2000


def figure_specs(setting: theorem.TheoremSetting) -> dict:
    """Every figure, page 1's then page 2's, by file name."""
    return {"error_grid": error_grid.SPEC, "spheres": spheres.SPEC, "linear": linear.SPEC,
            "theorem": theorem.spec(setting), "relaxation": relaxation.SPEC,
            "modern_methods": modern.METHODS_SPEC,
            "relaxation_gaps": beyond_coap.gap_maps_spec(setting), "dynamics": beyond_coap.dynamics_spec(setting),
            "tightness": tightness.SPEC,
            **{paper2023.spec(name).name: paper2023.spec(name) for name in FIGURES_2023}}


def column_chars(column: int, fontsize: float) -> int:
    """How many characters of body text fit across a poster column (≈0.55 em per character)."""
    width_in = A0_LANDSCAPE_IN[0] * COLUMN_RATIOS[column] / sum(COLUMN_RATIOS)
    return int(0.95 * width_in * 72 / (0.55 * fontsize))


def section(fig, title: str, fontsize: float, column: int | None = None):
    """A section heading; a computed one can be long, so it wraps to its column's width."""
    if column is not None:
        title = textwrap.fill(title, column_chars(column, fontsize))
    fig.suptitle(title, x=0.01, ha="left", fontsize=fontsize, fontweight="bold", color=HEADER_COLOR)


def draw_left(fig, fontsize, key_lines):
    objective, bounds, fairness, numbers = fig.subfigures(4, 1, height_ratios=[0.15, 0.43, 0.17, 0.25])
    chars = column_chars(0, fontsize)
    draw_blocks(objective.add_subplot(), OBJECTIVE, fontsize, "Robust classification", chars)
    # Separate subfigures, so the picture's tick labels do not indent the text above it.
    text_fig, picture_fig = bounds.subfigures(2, 1, height_ratios=[0.56, 0.44])
    draw_blocks(text_fig.add_subplot(), BOUNDS, fontsize, "Lower vs upper bound", chars)
    relaxation.draw_relaxation(picture_fig.add_subplot())
    draw_blocks(fairness.add_subplot(), FAIRNESS, fontsize, "Fairness", chars)
    ax = numbers.add_subplot()
    ax.set_axis_off()
    ax.annotate("What these records show", (0, 1), xycoords="axes fraction", va="top", fontsize=fontsize * 1.35,
                fontweight="bold", color=HEADER_COLOR)
    small = fontsize * 0.72
    wrapped = "\n".join(textwrap.fill("• " + line, column_chars(0, small), subsequent_indent="   ")
                        for line in key_lines)
    ax.annotate(wrapped, (0, 1), xycoords="axes fraction", xytext=(0, -fontsize * 2.4), textcoords="offset points",
                va="top", fontsize=small, linespacing=1.3)


def draw_centre(fig, results, fontsize):
    records = error_grid.paper_records(results)
    section(fig, error_grid.heading(records), fontsize * 1.35, column=1)
    error_grid.draw_grid(fig, records, legend_loc="outside lower center",
                         results_dir=results.directory)


def draw_spheres_panel(fig, results, fontsize):
    records, _ = spheres.main_setting(spheres.paper_records(results))
    section(fig, spheres.heading(records), fontsize * 1.35, column=2)
    axes = fig.subplots(2, 2)
    spheres.draw_sketch(axes[0, 0])
    if not records:
        for ax in (axes[0, 1], axes[1, 0], axes[1, 1]):
            spheres.missing(ax, "", results.directory)
        return
    spheres.draw_vs_eps(axes[0, 1], records, "robust_error", "Robust error")
    eps = spheres.large_eps(records)
    if eps is None:
        for ax in (axes[1, 0], axes[1, 1]):
            message_panel(ax, "per-epoch history", ["The spheres records carry no per-epoch history."])
    else:
        spheres.draw_per_epoch(axes[1, 0], records, "alignment", "Cosine alignment", eps)
        spheres.draw_per_epoch(axes[1, 1], records, "robust_error", "Robust error", eps)
    for ax in axes.flat[1:]:
        axis_legend(ax, records)


def axis_legend(ax, records):
    """The methods drawn in `ax`, and the hollow-marker note when a run of `records` collapsed."""
    methods = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    labels = {method_style(m).label: m for m in {r["config"].get("method") for r in records} if m}
    handles = legend_handles([labels[m] for m in methods if m in labels], flagged=health_warning(records) is not None)
    ax.legend(handles=handles, frameon=False, fontsize="small", loc="best")


def draw_theorem_panel(fig, results, fontsize, setting):
    """The statement beside the map of where it holds; the gradient curves stay in the
    stand-alone figure, as a column's third plot would leave each unreadably small."""
    section(fig, "Theorem (one neuron, one step)", fontsize * 1.35)
    text_fig, plot_fig = fig.subfigures(1, 2, width_ratios=[0.5, 0.5])
    size = fontsize * 0.85
    draw_blocks(text_fig.add_subplot(), THEOREM, size, width_chars=int(column_chars(2, size) * 0.49))
    ax = plot_fig.add_subplot()
    grid = theorem.risk_gap_map(setting)
    simulations = theorem.one_step_rows(results.of(theorem.KIND), setting)
    handles = theorem.draw_map(ax, grid, colorbar_fig=plot_fig, legend=False, simulations=simulations)
    # Under the statement: below the map the legend would squeeze it, inside it would hide it.
    text_fig.legend(handles=handles, loc="lower left", ncols=2, frameon=False, fontsize="small")


def draw_linear_panel(fig, results, fontsize):
    records = results.of(linear.KIND)
    section(fig, linear.heading(records), fontsize * 1.35, column=2)
    sizes = linear.sizes(records)
    if not sizes:
        message_panel(fig.add_subplot(), "", ["No linear records yet. Produce them with:"],
                      linear_command(results.directory).replace(" --methods", "\n--methods"))
        return
    axes = fig.subplots(1, len(sizes), squeeze=False)[0]
    for ax, n in zip(axes, sizes):
        linear.draw_panel(ax, records, n, "robust_error", "Robust error")
        axis_legend(ax, records)


def key_numbers(results: Results, setting) -> list[str]:
    """The summary lines, each computed from the records: how often each certified method's
    robust error is above AT's (and where the records disagree with the paper), the theorem
    map's counts, and one line naming the collapsed or diverged runs left out of all of these.
    The numbers behind each count are in the figures' summaries and the report."""
    train = error_grid.paper_records(results)
    sph, _ = spheres.main_setting(spheres.paper_records(results))
    lin = results.of(linear.KIND)
    lines = error_grid.claim_lines(train) + spheres.claim_lines(sph) + linear.claim_lines(lin)
    grid = theorem.risk_gap_map(setting)
    lines += theorem.summarize(grid, theorem.gradient_curves(setting))[:1]
    if not (train or sph or lin):
        lines.append("No experiment records yet: run " + POSTER_COMMAND)
    warning = health_warning(train + sph + lin)
    return lines + ([f"Warning: {warning}"] if warning else [])


def page_frame(results: Results, title: str, fontsize: float):
    """An A0 landscape figure with the title band; returns (figure, body subfigure)."""
    fig = new_figure(*A0_LANDSCAPE_IN)
    # A margin around every panel (inches), so nothing touches the page edge.
    fig.get_layout_engine().set(w_pad=0.3, h_pad=0.2)
    top, body = fig.subfigures(2, 1, height_ratios=[0.075, 0.925])
    top.set_facecolor(HEADER_COLOR)
    top.text(0.5, 0.62, title, ha="center", va="center", color="white", fontsize=fontsize * 2.6, fontweight="bold")
    top.text(0.5, 0.2, AUTHORS, ha="center", va="center", color="white", fontsize=fontsize * 1.1)
    top.text(0.995, 0.06, f"drawn by python -m figures.poster from {results.count} records in {results.directory}",
             ha="right", va="bottom", color="white", fontsize=fontsize * 0.5)
    return fig, body


def compose_poster(results: Results, out_dir, setting, dpi: int = 100) -> list[Path]:
    """Draw the A0 landscape poster into `<out_dir>/poster.png` and `.pdf`."""
    with style_context(POSTER_SCALE):
        fontsize = 11 * POSTER_SCALE
        fig, body = page_frame(results, TITLE, fontsize)
        left, centre, right = body.subfigures(1, 3, width_ratios=COLUMN_RATIOS, wspace=0.015)
        draw_left(left, fontsize, key_numbers(results, setting))
        draw_centre(centre, results, fontsize)
        sph, thm, lin = right.subfigures(3, 1, height_ratios=[0.42, 0.38, 0.2])
        draw_spheres_panel(sph, results, fontsize)
        draw_theorem_panel(thm, results, fontsize, setting)
        draw_linear_panel(lin, results, fontsize)
        return save_figure(fig, out_dir, "poster", dpi=dpi)


def compose_page_two(results: Results, out_dir, setting, dpi: int = 100) -> list[Path]:
    """Draw page 2 (what came after the paper) into `<out_dir>/poster-2.png` and `.pdf`: the later
    methods and the 2023 spheres figures above, the relaxations beyond COAP's slope below."""
    with style_context(POSTER_SCALE):
        fontsize = 11 * POSTER_SCALE
        fig, body = page_frame(results, PAGE_TWO_TITLE, fontsize)
        upper, lower, foot = body.subfigures(3, 1, height_ratios=(0.64, 0.32, 0.04), hspace=0.02)
        left, right = upper.subfigures(1, 2, width_ratios=(1.3, 1.0), wspace=0.015)
        records = modern.method_records(results)
        section(left, modern.methods_heading(records), fontsize * 1.2, column=1)
        modern.draw_methods_records(left, records, results.directory, legend_loc="outside lower center")
        later = spheres.later_records(results)
        section(right, modern.spheres_heading(later) if later else "Spheres, 2023 study", fontsize * 1.2, column=2)
        for sub, name in zip(right.subfigures(len(FIGURES_2023), 1), FIGURES_2023):
            paper2023.draw_figure(sub, results, name)
        draw_theory_row(lower, results, setting, fontsize)
        warning = health_warning(records + later)
        if warning:
            foot.text(0.0, 1.0, "Warning: " + textwrap.fill(warning, 300), fontsize=fontsize * 0.45, va="top")
        return save_figure(fig, out_dir, "poster-2", dpi=dpi)


def draw_theory_row(fig, results: Results, setting, fontsize: float) -> list[str]:
    """`THEORY_ROW`'s figures side by side, each drawn by its own module as in its stand-alone file."""
    section(fig, THEORY_HEADING, fontsize * 1.2)
    specs = figure_specs(setting)
    lines = []
    with style_context(THEORY_ROW_SCALE):
        for sub, name in zip(fig.subfigures(1, len(THEORY_ROW), width_ratios=(2.6, 1.25, 1.25), wspace=0.015),
                             THEORY_ROW):
            lines += specs[name].draw(sub, results)
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m figures.poster",
        description="Draw every poster figure from the result records (PNG and PDF each) and compose the "
                    "A0 landscape poster. Figures only read records; a panel without records shows the "
                    "command that produces them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: python -m figures.poster --run-missing quick   (a newcomer's one command to a full poster)\n\n"
               "--run-missing quick trains these grids (their records: kind 'train'):\n" + describe_quick_grid())
    parser.add_argument("--results", default="results", help="directory of result records (default: results/)")
    parser.add_argument("--out", default="figures-out", help="directory for the figures and the poster "
                        "(default: figures-out/)")
    parser.add_argument("--run-missing", choices=["quick"], default=None,
                        help="first run, at CPU scale, the experiments whose records are missing (the "
                             "experiments' quick presets: simulate one_step, linear and spheres; the quick training "
                             "grids on --datasets, listed below), writing into --results; then draw. "
                             "Kinds and columns that already have records are not rerun")
    parser.add_argument("--datasets", default=",".join(QUICK_TRAIN_GRID),
                        help="with --run-missing: the training datasets to run when their poster column has no "
                             f"records (default: {','.join(QUICK_TRAIN_GRID)}; quick CIFAR-10 cells take minutes each "
                             "on a CPU)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="leave out records whose config has KEY with another value (repeatable; numbers "
                             "compare as numbers, 36/255 allowed); records without KEY are kept, so --where "
                             "recipe=quick selects quick training runs and keeps the simulate kinds")
    parser.add_argument("--figures", default=",".join(FIGURE_NAMES),
                        help=f"comma-separated figures to draw (default: all of {','.join(FIGURE_NAMES)})")
    parser.add_argument("--no-poster", action="store_true", help="draw the figures only, not the poster")
    parser.add_argument("--pages", default="1",
                        help="poster pages to compose, comma-separated: 1 = the paper's poster (poster.png/.pdf), "
                             "2 = after the paper: later certified methods against AT and the 2023 spheres study's "
                             f"figures ({', '.join(FIGURES_2023)}) "
                             "(poster-2.png/.pdf) (default: 1)")
    parser.add_argument("--dpi", type=int, default=150, help="PNG resolution of each figure (default: 150)")
    parser.add_argument("--poster-dpi", type=int, default=100,
                        help="PNG resolution of the A0 poster (default: 100, i.e. 4681×3311 pixels)")
    parser.add_argument("--theory-grid", type=int, default=theorem.TheoremSetting.grid,
                        help="cells per axis of the theorem's (ε/γ, r) map; cost grows with its square "
                             f"(default: {theorem.TheoremSetting.grid})")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and the output paths")
    return parser


def check_args(args) -> list[str]:
    check_number("dpi", args.dpi, 1, MAX_DPI, integer=True)
    check_number("poster_dpi", args.poster_dpi, 1, MAX_DPI, integer=True)
    check_number("theory_grid", args.theory_grid, 2, MAX_THEORY_GRID, integer=True)
    names = [n.strip() for n in args.figures.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIGURE_NAMES]
    if unknown or not names:
        raise UserError(f"unknown figure {', '.join(unknown) or repr(args.figures)}; "
                        f"choose from {', '.join(FIGURE_NAMES)}.")
    if not args.run_missing and Path(args.results).exists() and not Path(args.results).is_dir():
        raise UserError(f"--results {args.results} is a file; pass the folder the experiments wrote their records to.")
    check_out_dir(args.out)  # last: nothing is created for a command that is refused
    if args.run_missing:
        check_out_dir(args.results, "--results")  # the experiments write their records there
    return names


def check_pages(text: str) -> list[int]:
    words = [w.strip() for w in str(text).split(",") if w.strip()]
    if not words or any(w not in {str(p) for p in PAGES} for w in words):
        raise UserError(f"--pages takes a comma-separated list of {', '.join(map(str, PAGES))}, got {text!r}; "
                        "e.g. --pages 1,2.")
    return sorted({int(w) for w in words})


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    pages = check_pages(args.pages)
    datasets = check_datasets(parse_list(args.datasets))
    where = parse_where(args.where)
    names = check_args(args)  # last: it creates the output folders
    log = (lambda *a, **k: None) if args.quiet else print
    start = time.perf_counter()
    if args.run_missing:
        # Every line goes to stderr as well under --quiet: a skipped experiment is a warning.
        lines = run_missing(args.results, scale=args.run_missing, datasets=datasets, progress=not args.quiet,
                            log=log)
        for line in lines:
            if args.quiet and "skipped" in line:
                print(f"warning: {line}", file=sys.stderr)
    results = load_results(args.results, where)
    for problem in results.problems:
        print(f"warning: {problem}", file=sys.stderr)
    setting = theorem.TheoremSetting(grid=args.theory_grid)
    specs = figure_specs(setting)
    for name in names:
        rendered = render(specs[name], results, args.out, dpi=args.dpi)
        print(f"{name}: " + ", ".join(str(p) for p in rendered.paths))
        for line in rendered.summary:
            log(f"  {line}")
    if not args.no_poster:
        composers = {1: lambda: compose_poster(results, args.out, setting, dpi=args.poster_dpi),
                     2: lambda: compose_page_two(results, args.out, setting, dpi=args.poster_dpi)}
        for page in pages:
            paths = composers[page]()
            print(f"poster{'' if page == 1 else f' page {page}'}: " + ", ".join(str(p) for p in paths))
    log(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
