"""What every figure module provides, and the one routine that renders a figure to files.

A figure is a `FigureSpec`: a name (the file stem), its stand-alone size and a `draw`
function that fills a matplotlib Figure *or SubFigure* from loaded `Results` and returns
summary lines (the numbers the figure shows). Drawing into a SubFigure is what lets the
poster reuse the exact same drawing code as the stand-alone files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from figures.style import new_figure, save_figure, style_context


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    size: tuple  # inches (width, height) of the stand-alone figure
    draw: Callable  # draw(fig, results) -> list[str]


@dataclass
class Rendered:
    spec: FigureSpec
    paths: list
    summary: list


def render(spec: FigureSpec, results, out_dir, dpi: int = 150) -> Rendered:
    """Draw one figure from `results` and write `<name>.png` and `<name>.pdf` under `out_dir`."""
    with style_context(1.0):
        fig = new_figure(*spec.size)
        summary = spec.draw(fig, results)
        paths = save_figure(fig, out_dir, spec.name, dpi=dpi)
    return Rendered(spec, paths, summary)
