"""The one-neuron theory beyond COAP's fixed slope: per-relaxation one-step gap maps and many-step
trajectories. Computed by `theory` (exact population quadrature), not read from records.

* `GAP_MAPS`: R_r − R_AT after one step over (ε/γ, r), one panel per relaxation of
  `theory.derivation.RELAXATIONS` (red: worse than AT, blue: better, white: equal).
* `DYNAMICS`: θ₁ and the robust-risk gap to AT over T exact population GD steps (`theory.dynamics`),
  for AT and every relaxation, with where each converges.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import SymLogNorm

from figures.spec import FigureSpec
from figures.style import method_style


@dataclass(frozen=True)
class TheorySetting:
    """The worked example of PAPER.md §2 (σ INFERRED = 1); `grid` cells per map axis, `steps` of GD."""
    gamma: float = 1.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = -0.5
    theta1: float = 1.0
    eta: float = 1.0
    grid: int = 20
    eps_range: tuple = (0.05, 0.95)
    ratio_range: tuple = (0.3, 50.0)
    eps: float = 0.8              # the trajectories' budget and ratio
    ratio: float = 5.0
    steps: int = 150


def _population(setting):
    return dict(gamma=setting.gamma, sigma=setting.sigma, a=setting.a, b=setting.b, theta1=setting.theta1)


@functools.lru_cache(maxsize=2)
def gap_grids(setting: TheorySetting) -> dict:
    from theory.derivation import RELAXATIONS
    from theory.population import risk_gap_grids
    return risk_gap_grids(np.linspace(*setting.eps_range, setting.grid), np.geomspace(*setting.ratio_range,
                          setting.grid), eta=setting.eta, relaxations=tuple(RELAXATIONS), **_population(setting))


def draw_gap_map(ax, grid, label: str) -> str:
    """One relaxation's map on a symmetric log scale shared with its own extremes; returns its summary."""
    gap = np.asarray(grid.gap)
    nonzero = np.abs(gap[gap != 0])
    vmax = float(nonzero.max()) if nonzero.size else 1e-12
    norm = SymLogNorm(linthresh=float(np.quantile(nonzero, 0.1)) if nonzero.size else 1e-15, vmin=-vmax, vmax=vmax)
    mesh = ax.pcolormesh(grid.eps_ratio, grid.ratio, gap.T, cmap="RdBu_r", shading="nearest", norm=norm)
    if nonzero.size:
        ax.figure.colorbar(mesh, ax=ax, label="R_r − R_AT after one step")
    if np.any(gap > 0) and np.any(gap < 0):
        ax.contour(grid.eps_ratio, grid.ratio, gap.T, levels=[0], colors="0.35", linewidths=2, linestyles="dashdot")
    worse, better = int((gap > 0).sum()), int((gap < 0).sum())
    verdict = ("identical to AT" if worse == better == 0 else
               f"worse than AT in {worse}, better in {better} of {gap.size} cells")
    ax.set_yscale("log")
    ax.set_xlabel("ε / γ")
    ax.set_ylabel("r = ‖θ₂:d‖ / θ₁")
    ax.set_title(f"{label}: {verdict}", fontsize="medium")
    return f"one-step gap map, {label}: {verdict}; |gap| ≤ {vmax:.3g}"


def make_gap_maps(setting: TheorySetting):
    def draw(fig, results) -> list[str]:
        grids = gap_grids(setting)
        axes = np.atleast_1d(fig.subplots(1, len(grids)))
        return [draw_gap_map(ax, grid, method_style(name).label if name != "optimal" else "optimal slope (= LP)")
                for ax, (name, grid) in zip(axes, grids.items())]
    return draw


@functools.lru_cache(maxsize=2)
def trajectories(setting: TheorySetting):
    from theory.derivation import OBJECTIVES
    from theory.dynamics import gaps_to_at, limit, trajectories as run
    values = _population(setting)
    paths = run(setting.eps, setting.ratio, setting.steps, eta=setting.eta, objectives=OBJECTIVES, **values)
    gaps = gaps_to_at(paths, setting.eps, setting.ratio, **values)
    limits = {n: limit(p, setting.eps, setting.ratio, **values) for n, p in paths.items()}
    return paths, gaps, limits


def make_dynamics(setting: TheorySetting):
    def draw(fig, results) -> list[str]:
        paths, gaps, limits = trajectories(setting)
        left, right = fig.subplots(1, 2)
        lines = []
        for name, path in paths.items():
            style = method_style(name)
            label = "optimal slope" if name == "optimal" else style.label
            # Identical trajectories (optimal, IBP = AT) are drawn thinner on top, so all stay visible.
            width = 1.5 if name in ("optimal", "ibp") else 3
            steps = np.arange(len(path.theta1))
            left.plot(steps, path.theta1, color=style.color, linestyle=style.linestyle, linewidth=width, label=label)
            right.plot(steps, 100 * gaps[name], color=style.color, linestyle=style.linestyle, linewidth=width,
                       label=label)
            if limits[name].theta1 is not None:
                left.axhline(limits[name].theta1, color=style.color, linewidth=1, linestyle=":")
            lines.append(f"{setting.steps} GD steps, {label}: θ₁ = {path.theta1[-1]:.4g}, R_ε = {path.risk[-1]:.4g}, "
                         f"gap to AT {100 * gaps[name][-1]:+.2f} pp; {limits[name].describe()}")
        left.set_xlabel("GD step")
        left.set_ylabel("θ₁ (dotted: stationary point)")
        left.set_title(f"θ₁ at ε/γ = {setting.eps / setting.gamma:g}, r = {setting.ratio:g}")
        right.set_xlabel("GD step")
        right.set_ylabel("R_ε − R_ε(AT) (pp)")
        right.set_title("Robust-risk gap to AT")
        right.axhline(0, color="0.5", linewidth=1)
        left.legend(fontsize="small")
        return lines
    return draw


def gap_maps_spec(setting: TheorySetting = TheorySetting()) -> FigureSpec:
    return FigureSpec("relaxation_gaps", "One-step risk gap per relaxation", (20, 4.8), make_gap_maps(setting))


def dynamics_spec(setting: TheorySetting = TheorySetting()) -> FigureSpec:
    return FigureSpec("dynamics", "Many population GD steps", (13, 5.5), make_dynamics(setting))
