"""Concentric spheres: why certified training hurts when the perturbation is aligned with
the signal and ε is large.

Reads `spheres` records (simulate.spheres): config preset, method, norm, eps, k, margin,
seed; metrics standard_error, robust_error, unstable_fraction; history per epoch with
alignment (mean cosine between attack perturbation and the radial signal direction) and
robust_error.
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Circle

from figures.commands import spheres_command
from figures.curves import add_figure_legend, format_eps_axis, plot_method_curves
from figures import claims
from figures.records import flagged_points, health_warning, history_series, pooled_settings, series, versus_at
from figures.spec import FigureSpec
from figures.style import eps_formatter, message_panel, method_sort_key, method_style, norm_label

KIND = "spheres"
# Runs that differ in these keys answer different questions (threat model, margin
# ablation, recipe); one figure shows one such setting.
SETTING_KEYS = ("preset", "norm", "k", "margin")
CLASS_COLORS = ("#009E73", "#56B4E9")  # Okabe–Ito, distinct from every method colour


#: the later study's preset (page 2, `figures.modern`); page 1 shows the paper's setting
LATER_PRESET = "2023"


def paper_records(results) -> list:
    """Spheres records of the paper's setting (every preset but the 2023 study's)."""
    return [r for r in results.of(KIND) if str(r["config"].get("preset")) != LATER_PRESET]


def later_records(results) -> list:
    return [r for r in results.of(KIND) if str(r["config"].get("preset")) == LATER_PRESET]


def settings_of(record) -> tuple:
    return tuple(str(record["config"].get(k)) for k in SETTING_KEYS)


def main_setting(records) -> tuple[list, list[str]]:
    """The records of the best-covered setting, and a note on the ones left out.

    The full-ℓ2 threat (no `k` directions) is preferred, as on the poster; among those,
    the setting with the most records.
    """
    if not records:
        return [], []
    counts = {}
    for rec in records:
        counts[settings_of(rec)] = counts.get(settings_of(rec), 0) + 1
    best = max(counts, key=lambda s: (s[2] == "None", counts[s]))
    chosen = [r for r in records if settings_of(r) == best]
    notes = []
    if len(counts) > 1:
        label = ", ".join(f"{k}={v}" for k, v in zip(SETTING_KEYS, best))
        notes.append(f"spheres: showing {label} ({len(chosen)} records); {len(records) - len(chosen)} records of "
                     f"other settings are not shown — pick one with --where KEY=VALUE.")
    return chosen, notes


def large_eps(records):
    """The largest ε with a per-epoch history for AT or COAP (the poster's "large ε")."""
    candidates = [r["config"]["eps"] for r in records
                  if r.get("history") and r["config"].get("method") in ("at", "coap")]
    return max(candidates) if candidates else None


def by_method(groups: dict) -> dict:
    return {key[0]: pts for key, pts in groups.items()}


def draw_sketch(ax, radii=(1.0, 2.0), n_points=18, seed=0):
    """Two concentric spheres (one per class), the radial signal direction at a few points
    and an ℓ2 ball reaching toward the other class. A schematic: the radii are illustrative."""
    rng = np.random.default_rng(seed)
    boundary = sum(radii) / 2
    for radius, color in zip(radii, CLASS_COLORS):
        ax.add_patch(Circle((0, 0), radius, fill=False, color=color, linewidth=2))
        angles = rng.uniform(0, 2 * np.pi, n_points)
        ax.plot(radius * np.cos(angles), radius * np.sin(angles), "o", color=color, markersize=5)
    ax.add_patch(Circle((0, 0), boundary, fill=False, color="0.4", linestyle=":", linewidth=1.5))
    for angle in (0.35, 2.2, 4.1):
        start = radii[0] * np.array([np.cos(angle), np.sin(angle)])
        ax.annotate("", xy=start * boundary / radii[0], xytext=start,
                    arrowprops={"arrowstyle": "->", "color": "black", "lw": 2})
    ball_center = radii[1] * np.array([np.cos(0.35), np.sin(0.35)])
    ax.add_patch(Circle(tuple(ball_center), 0.35 * (radii[1] - radii[0]), color="0.3", alpha=0.25))
    ax.set_xlim(-radii[1] * 1.15, radii[1] * 1.15)
    ax.set_ylim(-radii[1] * 1.15, radii[1] * 1.15)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title("Concentric spheres: the signal is radial")
    ax.text(0.5, -0.02, "arrows: signal direction\ndotted: decision boundary; grey: an ℓ2 ball",
            transform=ax.transAxes, ha="center", va="top", fontsize="small")


def draw_vs_eps(ax, records, metric: str, label: str):
    curves = by_method(series(records, ("method",), "eps", metric))
    hollow = by_method(flagged_points(records, ("method",), "eps", metric))
    drawn = plot_method_curves(ax, curves, flagged=hollow)
    ax.set_ylabel(label)
    ax.set_ylim(bottom=0)
    norm = records[0]["config"].get("norm") if records else None
    format_eps_axis(ax, [p.x for pts in curves.values() for p in pts] + [x for pts in hollow.values() for x, _ in pts],
                    f"ε ({norm_label(norm)})")
    ax.set_title(f"{label} against ε")
    return drawn


def trained_against_attack(records, eps) -> list:
    """Records at `eps` of the methods that see perturbations in training (ST never does)."""
    return [r for r in records if r["config"].get("eps") == eps and r["config"].get("method") != "st"]


def draw_per_epoch(ax, records, key: str, label: str, eps):
    at_eps = trained_against_attack(records, eps)
    curves = by_method(history_series(at_eps, ("method",), key))
    drawn = plot_method_curves(ax, curves, clip=(-1.0, 1.0))
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{label} per epoch, ε = {eps_formatter([eps])(eps)}")
    return drawn


def missing(ax, what: str, results_dir="results"):
    command = spheres_command(results_dir).replace(" --eps", "\n--eps")
    message_panel(ax, what, ["No spheres records yet (kind 'spheres').", "Produce them with:"], command)


#: a spheres run is compared with AT's at the same ε within one setting
CELL_KEYS = ("preset",)


def claim_lines(records) -> list[str]:
    """How often each certified method's robust error is above AT's, and the measures that
    do not separate the methods (e.g. an unstable fraction equal for all of them)."""
    return (claims.claim_lines(records, CELL_KEYS, label=lambda cell: f"spheres {cell[0]}")
            + [f"spheres: {line}" for line in claims.equal_across_methods(records, "unstable_fraction")])


def heading(records) -> str:
    return claims.heading(records, CELL_KEYS, "Spheres", "Spheres: no run compares AT with a certified method yet",
                          label=lambda cell: f"spheres {cell[0]}")


def summarize(records, eps) -> list[str]:
    lines = []
    for metric in ("standard_error", "robust_error", "unstable_fraction"):
        curves = by_method(series(records, ("method",), "eps", metric))
        line = versus_at(curves)
        if line:
            lines.append(f"spheres {metric.replace('_', ' ')} {line}")
    if eps is not None:
        final = {}
        at_eps = trained_against_attack(records, eps)
        for key in ("alignment", "robust_error"):
            for (method,), pts in history_series(at_eps, ("method",), key).items():
                final.setdefault(method, []).append(f"{key.replace('_', ' ')} {pts[0].mean:.3f}→{pts[-1].mean:.3f}")
        for method in sorted(final, key=method_sort_key):
            lines.append(f"spheres per epoch at ε={eps:g}, {method_style(method).label}: " + "; ".join(final[method]))
    return lines


def draw(fig, results) -> list[str]:
    return draw_records(fig, paper_records(results), results.directory)


def draw_records(fig, records, results_dir="results") -> list[str]:
    """The spheres figure of one set of records (its best-covered setting)."""
    records, notes = main_setting(records)
    axes = fig.subplots(2, 3)
    draw_sketch(axes[0, 0])
    panels = [(axes[0, 1], "standard_error", "Standard error"), (axes[0, 2], "robust_error", "Robust error"),
              (axes[1, 2], "unstable_fraction", "Unstable ReLUs (fraction)")]
    if not records:
        for ax in (axes[0, 1], axes[0, 2], axes[1, 0], axes[1, 1], axes[1, 2]):
            missing(ax, "", results_dir)
        return ["spheres: no spheres records; run: " + spheres_command(results_dir)]
    drawn = []
    for ax, metric, label in panels:
        drawn += draw_vs_eps(ax, records, metric, label)
    eps = large_eps(records)
    if eps is None:
        for ax in (axes[1, 0], axes[1, 1]):
            message_panel(ax, "per-epoch history", ["The spheres records carry no per-epoch history."])
    else:
        drawn += draw_per_epoch(axes[1, 0], records, "alignment", "Cosine alignment", eps)
        drawn += draw_per_epoch(axes[1, 1], records, "robust_error", "Robust error", eps)
    warning = health_warning(records)
    add_figure_legend(fig, drawn, flagged=warning is not None)
    return claim_lines(records) + summarize(records, eps) + ([warning] if warning else []) + notes + pooled_settings(records, ("method", "eps"))


SPEC = FigureSpec("spheres", "Concentric spheres", (15, 9), draw)
