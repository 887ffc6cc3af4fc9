"""Poster page 2, what came after the paper (docs/PAPER.md §6): the certified methods since then
against AT, and the 2023 concentric-spheres study. Page 1 stays the paper's poster.

Reads `train` records of methods outside `error_grid.PAPER_METHODS` (with AT's as the
reference), drawn by page 1's error grid, and `spheres` records of the 2023 preset, drawn
by `figures.paper2023` (one figure per `realdata.synthetic.FIGURES_2023` grid); each
heading is counted from its records (`figures.claims`).
"""
from __future__ import annotations

from figures import claims, error_grid, spheres
from figures.commands import QUICK_TRAIN_GRID, eps_list
from figures.spec import FigureSpec
from figures.style import message_panel
from realdata.methods import TRAIN_METHODS

#: the methods since the paper: every registered training method the paper's poster lacks
LATER_METHODS = tuple(m for m in TRAIN_METHODS if m not in error_grid.PAPER_METHODS)


def method_records(results) -> list:
    """Training records of the later methods, and AT's as their reference."""
    return [r for r in results.of(error_grid.KIND) if r["config"].get("method") in LATER_METHODS + ("at",)]


def methods_command(out="results", dataset: str = "digits") -> str:
    grid = QUICK_TRAIN_GRID[dataset]
    return (f"python -m realdata.sweep --dataset {dataset} --methods at,{','.join(LATER_METHODS)} "
            f"--eps {eps_list(grid.eps)} --seeds {','.join(map(str, grid.seeds))} --recipe quick --out {out}")


def methods_heading(records) -> str:
    return claims.heading(records, error_grid.CELL_KEYS, "Since the paper",
                          "Since the paper: no cell compares AT with a later certified method yet")


def spheres_heading(records) -> str:
    chosen, _ = spheres.main_setting(records)
    return claims.heading(chosen, spheres.CELL_KEYS, "Spheres, 2023 study",
                          "Spheres, 2023 study: no run compares AT with a certified method yet",
                          label=lambda cell: f"spheres {cell[0]}")


def draw_methods_records(fig, records, results_dir="results", legend_loc="outside upper center") -> list[str]:
    if not any(r["config"].get("method") in LATER_METHODS for r in records):
        command = methods_command(results_dir)
        message_panel(fig.add_subplot(), "Certified training since the paper",
                      [f"No records of {', '.join(LATER_METHODS)} yet (kind 'train').", "Produce them with:"],
                      command.replace(" --eps", "\n--eps"))
        return [f"modern methods: no records; run: {command}"]
    return [methods_heading(records)] + error_grid.draw_grid(fig, records, legend_loc=legend_loc,
                                                             results_dir=results_dir, poster_columns=False)


def draw_methods(fig, results) -> list[str]:
    return draw_methods_records(fig, method_records(results), results.directory)


METHODS_SPEC = FigureSpec("modern_methods", "Certified training since the paper, against AT", (11, 11),
                          draw_methods)
