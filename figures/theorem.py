"""The one-neuron theorem: where one GD step on COAP's bound leaves a higher robust risk than
one step of AT, and why (the two expected gradients).

Everything here is computed by `theory.population` (exact population expectations by
quadrature); `one_step` records of `simulate.one_step`, when present, are drawn on the map
as finite-sample steps (their own θ₁ draw and r, so their gap is compared with the
population value for that draw, not with the map's colour).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import SymLogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from figures.records import metric_value
from figures.spec import FigureSpec
from figures.style import METHOD_STYLES

KIND = "one_step"
# The lemma needs ε > (5 + 2√3)γ/13 (docs/PAPER.md §2); the theorem states 2γ/3 < ε < γ.
LEMMA_RATIO = (5 + 2 * np.sqrt(3)) / 13
THEOREM_RANGE = (2 / 3, 1.0)


@dataclass(frozen=True)
class TheoremSetting:
    """The population setting of the map; defaults are docs/PAPER.md §2's worked example (σ is
    INFERRED = 1 there), which lies inside the theorem's ε range."""
    gamma: float = 1.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = -0.5
    theta1: float = 1.0
    eta: float = 1.0
    ratio: float = 5.0  # r of the gradient panel
    grid: int = 24  # map resolution per axis; the cost grows with its square (one quadrature per cell)
    eps_range: tuple = (0.05, 0.98)
    ratio_range: tuple = (0.5, 50.0)


@functools.lru_cache(maxsize=4)
def risk_gap_map(setting: TheoremSetting):
    """The map's grid; cached because the stand-alone figure and the poster draw the same one."""
    from theory.population import risk_gap_grid
    eps_ratios = np.linspace(*setting.eps_range, setting.grid)
    ratios = np.geomspace(*setting.ratio_range, setting.grid)
    return risk_gap_grid(eps_ratios, ratios, gamma=setting.gamma, sigma=setting.sigma, a=setting.a,
                         b=setting.b, theta1=setting.theta1, eta=setting.eta)


def draw_map(ax, grid, colorbar_fig=None, legend=True, simulations=()):
    """The gap R_COAP − R_AT after one step over (ε/γ, r); red: COAP worse.

    Returns the legend handles, for a caller that places the legend elsewhere (`legend=False`).
    """
    gap = np.asarray(grid.gap)
    finite = np.abs(gap[np.isfinite(gap) & (gap != 0)])
    # The gap spans many orders of magnitude; a symmetric log scale keeps its sign readable
    # everywhere while showing where it is large.
    linthresh = float(np.quantile(finite, 0.1)) if finite.size else 1e-12
    vmax = float(finite.max()) if finite.size else 1.0
    mesh = ax.pcolormesh(grid.eps_ratio, grid.ratio, gap.T, cmap="RdBu_r", shading="nearest",
                         norm=SymLogNorm(linthresh=linthresh, vmin=-vmax, vmax=vmax))
    handles = []
    if np.any(gap > 0) and np.any(gap < 0):
        # Grey dash-dot, so it is not mistaken for the black threshold curves.
        ax.contour(grid.eps_ratio, grid.ratio, gap.T, levels=[0], colors="0.35", linewidths=2.5,
                   linestyles="dashdot")
        handles.append(Line2D([], [], color="0.35", linewidth=2.5, linestyle="-.", label="gap = 0"))
    if np.any(grid.in_region):
        ax.contourf(grid.eps_ratio, grid.ratio, np.asarray(grid.in_region, dtype=float).T, levels=[0.5, 1.5],
                    colors="none", hatches=["//"])
        handles.append(Patch(facecolor="none", edgecolor="black", hatch="//", label="theorem's region"))
    # Below the lemma's ε the formula can still be finite (its quadratic turns positive again
    # near ε = 0) but it is no longer a condition of anything; it is not drawn there.
    lemma = grid.eps_ratio > LEMMA_RATIO
    handles += ax.plot(grid.eps_ratio[lemma], np.asarray(grid.threshold)[lemma], color="black", linewidth=2.5,
                       label="sufficient r*(ε)")
    handles += ax.plot(grid.eps_ratio[lemma], np.asarray(grid.threshold_printed)[lemma], color="black",
                       linestyle="--", label="r*(ε) as printed")
    handles.append(ax.axvline(THEOREM_RANGE[0], color="0.2", linewidth=1.5, label="ε = 2γ/3"))
    handles.append(ax.axvline(LEMMA_RATIO, color="0.2", linestyle=":", linewidth=1.5, label="lemma's smallest ε"))
    handles += draw_simulations(ax, simulations)
    ax.set_yscale("log")
    ax.set_ylim(grid.ratio.min(), grid.ratio.max())
    ax.set_xlabel("ε / γ")
    ax.set_ylabel("r = ‖θ₂:d‖ / θ₁")
    ax.set_title("Risk gap after one step")
    if legend:
        # Below the map: inside it the legend would hide the region it explains.
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False,
                  fontsize="small")
    if colorbar_fig is not None:
        bar = colorbar_fig.colorbar(mesh, ax=ax, label="R_COAP − R_AT (red: COAP worse)")
        bar.set_ticks([-vmax, -linthresh, 0, linthresh, vmax])
        bar.ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0e}" if v else "0")
    return handles


@functools.lru_cache(maxsize=4)
def gradient_curves(setting: TheoremSetting, n=40):
    from theory.population import expected_gradients
    eps_ratios = np.linspace(*setting.eps_range, n)
    s = setting.sigma * setting.ratio * abs(setting.theta1)
    grads = expected_gradients(setting.theta1, s, setting.gamma * eps_ratios, setting.gamma, setting.a, setting.b)
    return eps_ratios, np.asarray(grads.at), np.asarray(grads.relaxed)


def one_step_rows(records, setting: TheoremSetting) -> list[dict]:
    """simulate.one_step records in the map's setting (same γ, σ, a, b, η): where each sits on
    the map and its finite-sample risk gap next to the population value for its own draw."""
    rows = []
    for rec in records:
        cfg = rec.get("config", {})
        if any(cfg.get(k) != getattr(setting, k) for k in ("gamma", "sigma", "a", "b", "eta")) \
                or cfg.get("steps", 1) != 1:
            continue
        ratio, gap = metric_value(rec, "ratio"), metric_value(rec, "risk_gap")
        if ratio is None or gap is None or not isinstance(cfg.get("eps"), (int, float)):
            continue
        rows.append({"eps_ratio": cfg["eps"] / setting.gamma, "ratio": ratio, "n": cfg.get("n"),
                     "theta1": metric_value(rec, "theta1_init"), "gap": gap,
                     "se": metric_value(rec, "risk_gap_se"), "pop": metric_value(rec, "risk_gap_pop")})
    return rows


def draw_simulations(ax, rows):
    """One star per one_step record on the map: filled red when its simulated step left COAP
    with the higher robust risk, open blue otherwise."""
    for row in rows:
        worse = row["gap"] > 0
        ax.plot([row["eps_ratio"]], [row["ratio"]], marker="*", markersize=18, linestyle="none",
                markeredgecolor="black", markerfacecolor=METHOD_STYLES["coap"].color if worse else "white",
                zorder=6)
    if rows:
        return [Line2D([], [], marker="*", markersize=14, linestyle="none", markeredgecolor="black",
                       markerfacecolor=METHOD_STYLES["coap"].color, label="simulated step (filled: COAP worse)")]
    return []


def draw_gradients(ax, setting: TheoremSetting):
    eps_ratios, g_at, g_coap = gradient_curves(setting)
    for method, values in (("at", g_at), ("coap", g_coap)):
        style = METHOD_STYLES[method]
        ax.plot(eps_ratios, values, color=style.color, linestyle=style.linestyle, label=f"E[g] {style.label}")
    ax.axvspan(*THEOREM_RANGE, color="0.85", zorder=0, label="2γ/3 < ε < γ")
    ax.set_xlabel("ε / γ")
    ax.set_ylabel("expected ∂L/∂θ₁ at init")
    ax.set_title("Expected gradients at init")
    ax.legend(frameon=False, fontsize="small", loc="upper left",
              title=f"r = {setting.ratio:g}, θ₁ = {setting.theta1:g}",
              title_fontsize="small")
    return eps_ratios, g_at, g_coap


def summarize(grid, gradients, simulations=()) -> list[str]:
    counts = grid.counts()
    lines = [f"theorem map ({counts['cases']} cells): {counts['in_region']} in the theorem's region, "
             f"{counts['violations_in_region']} violations there; COAP worse in "
             f"{counts['coap_worse_outside_region']} of {counts['cases'] - counts['in_region']} cells outside it; "
             f"largest gap {float(np.nanmax(grid.gap)):.3g}"]
    eps_ratios, g_at, g_coap = gradients
    inside = (eps_ratios > THEOREM_RANGE[0]) & (eps_ratios < THEOREM_RANGE[1])
    if np.any(inside):
        lines.append(f"expected gradients for 2γ/3 < ε < γ: COAP − AT between {np.min((g_coap - g_at)[inside]):.3g} "
                     f"and {np.max((g_coap - g_at)[inside]):.3g} (positive: COAP moves θ₁ less toward the signal)")
    for row in simulations:
        se = f" ± {row['se']:.2g}" if row["se"] is not None else ""
        pop = f" (population {row['pop']:+.3g})" if row["pop"] is not None else ""
        lines.append(f"one_step n={row['n']} at ε/γ={row['eps_ratio']:g}, r={row['ratio']:.3g}: simulated risk gap "
                     f"COAP − AT {row['gap']:+.3g}{se}{pop}")
    return lines


def make_draw(setting: TheoremSetting):
    def draw(fig, results) -> list[str]:
        left, right = fig.subplots(1, 2)
        grid = risk_gap_map(setting)
        simulations = one_step_rows(results.of(KIND), setting)
        draw_map(left, grid, colorbar_fig=fig, simulations=simulations)
        gradients = draw_gradients(right, setting)
        return summarize(grid, gradients, simulations)
    return draw


def spec(setting: TheoremSetting = TheoremSetting()) -> FigureSpec:
    return FigureSpec("theorem", "The one-neuron theorem", (14, 6), make_draw(setting))


SPEC = spec()
