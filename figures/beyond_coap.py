"""The one-neuron theory beyond COAP's fixed slope: per-relaxation one-step gap maps and many-step
trajectories. Computed by `theory` (exact population quadrature), not read from records.

* `gap_maps_spec`: R_r − R_AT after one step over (ε/γ, r), one panel per relaxation of
  `theory.derivation.RELAXATIONS` (red: worse than AT, blue: better, white: equal).
* `dynamics_spec`: θ₁ and the robust-risk gap to AT over T exact population GD steps (`theory.dynamics`),
  for AT and every relaxation, with where each converges.
"""
from __future__ import annotations

import functools
import numpy as np
from matplotlib.colors import SymLogNorm

from figures.spec import FigureSpec
from figures.style import method_style
from figures.theorem import TheoremSetting


#: The trajectories' budget and number of steps (their r is the setting's gradient-panel r).
DYNAMICS_EPS = 0.8
DYNAMICS_STEPS = 150


def _population(setting):
    return dict(gamma=setting.gamma, sigma=setting.sigma, a=setting.a, b=setting.b, theta1=setting.theta1)


@functools.lru_cache(maxsize=2)
def gap_grids(setting: TheoremSetting) -> dict:
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
    ax.set_title(f"{label}:\n{verdict}", fontsize="medium")  # two lines: a panel is narrow
    return f"one-step gap map, {label}: {verdict}; |gap| ≤ {vmax:.3g}"


def make_gap_maps(setting: TheoremSetting):
    def draw(fig, results) -> list[str]:
        grids = gap_grids(setting)
        axes = np.atleast_1d(fig.subplots(1, len(grids)))
        return [draw_gap_map(ax, grid, method_style(name).label if name != "optimal" else "optimal slope (= LP)")
                for ax, (name, grid) in zip(axes, grids.items())]
    return draw


@functools.lru_cache(maxsize=2)
def trajectories(setting: TheoremSetting, eps: float, steps: int):
    from theory.derivation import OBJECTIVES
    from theory.dynamics import gaps_to_at, limit, trajectories as run
    values = _population(setting)
    paths = run(eps, setting.ratio, steps, eta=setting.eta, objectives=OBJECTIVES, **values)
    gaps = gaps_to_at(paths, eps, setting.ratio, **values)
    limits = {n: limit(p, eps, setting.ratio, **values) for n, p in paths.items()}
    return paths, gaps, limits


def make_dynamics(setting: TheoremSetting, eps: float, steps: int):
    def draw(fig, results) -> list[str]:
        paths, gaps, limits = trajectories(setting, eps, steps)
        left, right = fig.subplots(1, 2)
        lines = []
        for name, path in paths.items():
            style = method_style(name)
            label = "optimal slope" if name == "optimal" else style.label
            # Identical trajectories (optimal, IBP = AT) are drawn thinner on top, so all stay visible.
            width = 1.5 if name in ("optimal", "ibp") else 3
            step = np.arange(len(path.theta1))
            left.plot(step, path.theta1, color=style.color, linestyle=style.linestyle, linewidth=width, label=label)
            right.plot(step, 100 * gaps[name], color=style.color, linestyle=style.linestyle, linewidth=width,
                       label=label)
            if limits[name].theta1 is not None:
                left.axhline(limits[name].theta1, color=style.color, linewidth=1, linestyle=":")
            lines.append(f"{steps} GD steps, {label}: θ₁ = {path.theta1[-1]:.4g}, R_ε = {path.risk[-1]:.4g}, "
                         f"gap to AT {100 * gaps[name][-1]:+.2f} pp; {limits[name].describe()}")
        left.set_xlabel("GD step")
        left.set_ylabel("θ₁ (dotted: stationary point)")
        left.set_title(f"θ₁ at ε/γ = {eps / setting.gamma:g}, r = {setting.ratio:g}")
        right.set_xlabel("GD step")
        right.set_ylabel("R_ε − R_ε(AT) (pp)")
        right.set_title("Robust-risk gap to AT")
        right.axhline(0, color="0.5", linewidth=1)
        left.legend(fontsize="small")
        return lines
    return draw


def gap_maps_spec(setting: TheoremSetting = TheoremSetting()) -> FigureSpec:
    return FigureSpec("relaxation_gaps", "One-step risk gap per relaxation", (20, 4.8), make_gap_maps(setting))


def dynamics_spec(setting: TheoremSetting = TheoremSetting(), eps: float = DYNAMICS_EPS,
                  steps: int = DYNAMICS_STEPS) -> FigureSpec:
    return FigureSpec("dynamics", "Many population GD steps", (13, 5.5), make_dynamics(setting, eps, steps))
