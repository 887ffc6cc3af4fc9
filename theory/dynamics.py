"""Many steps: exact population gradient descent on θ₁ for AT and each relaxation.

    python -m theory.dynamics                           # ε = 0.8, r = 5, 200 steps, every objective
    python -m theory.dynamics --eps 0.8 --ratio 20 --steps 400 --objectives at,coap --json

θ_{2:d} stays frozen (so s = σ·r·θ₁⁽⁰⁾ is fixed) and every step recomputes the expectation by
quadrature at the current θ₁: θ₁ ← θ₁ − η·E[∂L/∂θ₁](θ₁). After T steps each trajectory is classified
by where gradient flow from its last iterate goes: to the first stationary point θ₁* of E[g] in the
direction of motion (a sign change, found by Brent's method), or on without bound if E[g] keeps its
sign over θ₁ ∈ [θ₁_T, 10⁴·θ₁_T]; for ε < γ that means R_ε → 0.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from tqdm.auto import tqdm

from theory.errors import Parser, finite, require, run_cli
from theory.setting import add_setting_arguments, setting, validate_setting

__all__ = ["Trajectory", "Limit", "trajectories", "limit", "gaps_to_at", "main"]

#: How far along the direction of motion `limit` looks for a stationary point, as a factor on θ₁_T.
SCAN_FACTOR = 1e4
SCAN_POINTS = 60


@dataclass(frozen=True)
class Trajectory:
    """θ₁ and R_ε at steps 0..T and the expected gradient at steps 0..T−1 of one objective."""

    objective: str
    theta1: np.ndarray
    risk: np.ndarray
    grad: np.ndarray


def trajectories(eps, ratio, steps, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0, eta=1.0,
                 objectives=("at", "coap"), progress=False):
    """{objective: Trajectory} of T exact population GD steps from the same θ₁ (s fixed at σ·r·θ₁)."""
    from theory.population import expected_gradient, robust_risk
    s = sigma * ratio * abs(theta1)
    out = {}
    for objective in objectives:
        path, grads = [float(theta1)], []
        for _ in tqdm(range(steps), desc=f"GD {objective}", disable=not progress, leave=False, file=sys.stderr):
            if path[-1] == 0:
                raise ValueError(f"{objective}: θ₁ reached 0, where the one-neuron setting ends; take a smaller η.")
            grads.append(expected_gradient(objective, path[-1], s, eps, gamma, a, b))
            path.append(path[-1] - eta * grads[-1])
        theta = np.asarray(path)
        out[objective] = Trajectory(objective, theta, np.asarray(robust_risk(theta, s, eps, gamma, a, b)),
                                    np.asarray(grads))
    return out


def gaps_to_at(paths, eps, ratio, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0):
    """{objective: R_ε(θ₁^objective_t) − R_ε(θ₁^AT_t) for t = 0..T}, free of cancellation."""
    from theory.population import risk_difference
    s = sigma * ratio * abs(theta1)
    at = paths["at"].theta1
    return {name: np.asarray(risk_difference(p.theta1, at, s, eps, gamma, a, b)) for name, p in paths.items()}


@dataclass(frozen=True)
class Limit:
    """Where gradient flow from θ₁_T goes: `theta1` is the stationary point θ₁*, or None if it runs off
    (`direction` +1 or −1); `risk` is R_ε there (its limit when running off with ε < γ: 0)."""

    objective: str
    theta1: float | None
    risk: float | None
    direction: int

    def describe(self):
        if self.theta1 is not None:
            return f"converges to the stationary point θ₁* = {self.theta1:.6g} (E[g] changes sign), R_ε = {self.risk:.6g}"
        way = "grows without bound" if self.direction > 0 else "falls toward 0"
        tail = f", R_ε → {self.risk:g}" if self.risk is not None else ""
        return f"θ₁ {way} (E[g] keeps its sign up to {SCAN_FACTOR:g}× θ₁_T){tail}"


def limit(path, eps, ratio, gamma=1.0, sigma=1.0, a=1.0, b=-0.5, theta1=1.0):
    """The `Limit` of a trajectory: the first sign change of E[g] along the direction of motion."""
    from theory.population import expected_gradient, robust_risk
    s = sigma * ratio * abs(theta1)
    start = float(path.theta1[-1])
    grad = expected_gradient(path.objective, start, s, eps, gamma, a, b)
    direction = -1 if grad > 0 else 1
    ends = start * np.geomspace(1.0, SCAN_FACTOR if direction > 0 else 1.0 / SCAN_FACTOR, SCAN_POINTS)

    def g(t):
        return expected_gradient(path.objective, t, s, eps, gamma, a, b)

    previous, value = ends[0], grad
    for point in ends[1:]:
        current = g(point)
        # Strictly opposite sign: an exact 0 far out is underflow of the tails, not a stationary point.
        if current * value < 0:
            star = brentq(g, previous, point, xtol=1e-12 * abs(point), rtol=1e-12)
            return Limit(path.objective, float(star), float(robust_risk(star, s, eps, gamma, a, b)), direction)
        previous, value = point, current
    runs_off_safely = direction > 0 and eps < gamma      # R_ε → 0 as θ₁ → ∞ when the signal beats the budget
    return Limit(path.objective, None, 0.0 if runs_off_safely else None, direction)


# --------------------------------------------------------------------------------------------- CLI

def build_parser():
    from theory.derivation import OBJECTIVES
    p = Parser(prog="python -m theory.dynamics",
               description=("Exact population gradient descent on θ₁ for T steps (expectations recomputed by quadrature "
                            "every step) for AT and each relaxation, from the same θ₁ with θ_{2:d} frozen; prints the "
                            "trajectories of θ₁, the robust risk R_ε and its gap to AT, and where each converges."))
    p.add_argument("--eps", type=float, default=0.8, help="perturbation budget ε > 0 along e₁ (default: %(default)s)")
    p.add_argument("--ratio", type=float, default=5.0,
                   help="r = ‖θ_{2:d}‖/θ₁ > 0 at initialisation (default: %(default)s)")
    p.add_argument("--steps", type=int, default=200, help="number of GD steps T ≥ 1 (default: %(default)s)")
    p.add_argument("--objectives", default=",".join(OBJECTIVES),
                   help=f"comma-separated, AT first: any of {', '.join(OBJECTIVES)} (default: all)")
    p.add_argument("--every", type=int, default=0, help="print every k-th step (default: about 10 rows)")
    add_setting_arguments(p, "setting; the sources give no values, so every default is INFERRED (docs/PAPER.md's worked "
                             "example)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse_objectives(text):
    from theory.derivation import OBJECTIVES
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in OBJECTIVES]
    require(not unknown and names, f"--objectives takes names among {', '.join(OBJECTIVES)}, got {text!r}.")
    require(len(set(names)) == len(names), f"--objectives names each objective once, got {text!r}.")
    return ("at", *[n for n in names if n != "at"])


def validate(args):
    validate_setting(args)
    for name in ("eps", "ratio"):
        finite(name, getattr(args, name))
    require(args.eps > 0, f"--eps must be positive (the budget along e₁), got {args.eps}.")
    require(args.ratio > 0, f"--ratio must be positive (r = ‖θ_2:d‖/θ₁), got {args.ratio}.")
    require(1 <= args.steps <= 100_000, f"--steps must be between 1 and 100000, got {args.steps}.")
    require(args.every >= 0, f"--every must be 0 (automatic) or a positive step count, got {args.every}.")


def _rows(args, paths, gaps):
    every = args.every or max(1, math.ceil(args.steps / 10))
    shown = sorted(set(range(0, args.steps + 1, every)) | {args.steps})
    head = "  step " + "".join(f"{f'θ₁ {n}':>13}{f'R_ε {n}':>13}" + ("" if n == "at" else f"{'gap':>12}")
                               for n in paths)
    lines = [head]
    for t in shown:
        lines.append(f"  {t:>4} " + "".join(
            f"{p.theta1[t]:>13.6g}{p.risk[t]:>13.6g}" + ("" if n == "at" else f"{gaps[n][t]:>+12.3g}")
            for n, p in paths.items()))
    return lines


def main(argv=None):
    args = build_parser().parse_args(argv)
    validate(args)
    objectives = parse_objectives(args.objectives)
    values = setting(args)
    eta = values.pop("eta")
    paths = trajectories(args.eps, args.ratio, args.steps, eta=eta, objectives=objectives, progress=not args.quiet,
                         **values)
    gaps = gaps_to_at(paths, args.eps, args.ratio, **values)
    limits = {n: limit(p, args.eps, args.ratio, **values) for n, p in paths.items()}
    if args.json:
        print(json.dumps({"eps": args.eps, "ratio": args.ratio, "steps": args.steps, **setting(args),
                          "trajectories": {n: {"theta1": p.theta1.tolist(), "risk": p.risk.tolist(),
                                               "grad": p.grad.tolist(), "risk_gap": gaps[n].tolist(),
                                               "limit_theta1": limits[n].theta1, "limit_risk": limits[n].risk,
                                               "direction": limits[n].direction}
                                           for n, p in paths.items()}}))
        return 0
    print(f"{args.steps} exact population GD steps at ε = {args.eps:g}, r = {args.ratio:g} (γ={args.gamma:g}, "
          f"σ={args.sigma:g}, a={args.a:g}, b={args.b:g}, θ₁={args.theta1:g}, η={args.eta:g}); gap = R_ε − R_ε(AT)")
    print("\n".join(_rows(args, paths, gaps)))
    for name, found in limits.items():
        print(f"  {name}: after {args.steps} steps θ₁ = {paths[name].theta1[-1]:.6g}, R_ε = {paths[name].risk[-1]:.6g}"
              + ("" if name == "at" else f" (gap {gaps[name][-1]:+.3g})") + f"; {found.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
