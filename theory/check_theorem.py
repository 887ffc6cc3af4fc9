"""Machine-check the one-neuron theorem: COAP's one-step robust risk exceeds AT's (docs/PAPER.md §2).

    python -m theory.check_theorem                      # every check + the (ε/γ, r) grid
    python -m theory.check_theorem --eps 0.8 --ratio 5  # one point
    python -m theory.check_theorem --json               # one JSON object instead of text
    python -m theory.check_theorem --relaxation all     # also CROWN, the optimal slope and IBP against AT

Exit code: 0 if every check passes and no point inside the theorem's region has R_COAP ≤ R_AT;
1 otherwise; 2 for bad input.
"""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from theory.errors import Parser, finite, number, require, run_cli
from theory.population import resolved
from theory.setting import add_setting_arguments, setting, validate_setting

GRID_EPS_STEPS = 19                   # ε/γ = 1/20, …, 19/20
MAX_STEPS = 2000                      # per grid axis: the grid costs its product in exact steps
MAX_VALUE = 1e6                       # |setting| above this overflows the step's float64 arithmetic
MIN_SCALE = 1e-100                    # positive settings below this underflow it
GRID_RATIO = (0.1, 1000.0, 29)        # r log-spaced, 7 points per decade


def build_parser():
    p = Parser(
        prog="python -m theory.check_theorem",
        description=("Run every named check of the one-neuron theorem (sympy derivation vs the paper's printed "
                     "formulas, LP ground truth, high-precision bounds), then one exact population GD step for AT "
                     "and COAP on a grid of (ε/γ, r = ‖θ_{2:d}‖/θ₁), and report where R_ε(θ_COAP) > R_ε(θ_AT). "
                     "With --eps and --ratio: that single point only (no checks)."),
        epilog=("Exit code 0: all checks pass and no violation inside the theorem's region (2γ/3 < ε < γ and r above "
                "the sufficient threshold with exponent 3); a single point exits 1 if it lies in the region and "
                "COAP is not worse. 1: a check failed or a violation was found. 2: bad input."))
    point = p.add_argument_group("single point (give both)")
    point.add_argument("--eps", type=number, help="perturbation budget ε > 0 along e₁, e.g. 0.8 or 4/5")
    point.add_argument("--ratio", type=float, help="r = ‖θ_{2:d}‖/θ₁ > 0 at initialisation (≈ √d for θ ~ N(0, I))")
    add_setting_arguments(p, "setting (grid and single point); the sources give no values, so every default is "
                             "INFERRED (docs/PAPER.md's worked example)")
    grid = p.add_argument_group("grid")
    grid.add_argument("--eps-steps", type=int, default=GRID_EPS_STEPS,
                      help="ε/γ = k/(N+1), k = 1..N (default: %(default)s)")
    grid.add_argument("--ratio-min", type=float, default=GRID_RATIO[0], help="smallest r (default: %(default)s)")
    grid.add_argument("--ratio-max", type=float, default=GRID_RATIO[1], help="largest r (default: %(default)s)")
    grid.add_argument("--ratio-steps", type=int, default=GRID_RATIO[2],
                      help="number of log-spaced r values (default: %(default)s)")
    from theory.derivation import RELAXATIONS
    p.add_argument("--relaxation", choices=(*RELAXATIONS, "all"), default="coap",
                   help="which relaxation's one-step gap to AT to report: "
                        + "; ".join(f"{name}: {r.summary}" for name, r in RELAXATIONS.items())
                        + "; all: every one (default: %(default)s, the theorem's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def relaxations(args):
    """The relaxations asked for, in registry order."""
    from theory.derivation import RELAXATIONS
    return tuple(RELAXATIONS) if args.relaxation == "all" else (args.relaxation,)


def validate(args):
    validate_setting(args)
    for name in ("ratio_min", "ratio_max"):
        finite(name.replace("_", "-"), getattr(args, name))
    require((args.eps is None) == (args.ratio is None),
            "give --eps and --ratio together for a single point, or neither for the grid.")
    if args.eps is not None:
        finite("eps", args.eps)
        finite("ratio", args.ratio)
        require(args.eps > 0, f"--eps must be positive (the budget along e₁), got {args.eps}.")
        require(args.ratio > 0, f"--ratio must be positive (r = ‖θ_2:d‖/θ₁), got {args.ratio}.")
    require(1 <= args.eps_steps <= MAX_STEPS and 1 <= args.ratio_steps <= MAX_STEPS,
            f"--eps-steps and --ratio-steps must be between 1 and {MAX_STEPS}.")
    require(0 < args.ratio_min <= args.ratio_max, "--ratio-min must be positive and at most --ratio-max.")
    for name in ("gamma", "sigma", "a", "b", "theta1", "eta", "ratio_min", "ratio_max", "eps", "ratio"):
        value = getattr(args, name)
        require(value is None or MIN_SCALE <= abs(value) <= MAX_VALUE,
                f"--{name.replace('_', '-')} must lie between {MIN_SCALE:g} and {MAX_VALUE:g} in size, got {value}.")


def _gap_key(name):
    # COAP's gap keeps the key it always had (the theorem's); the others carry their name.
    return "risk_gap" if name == "coap" else f"risk_gap_{name}"


def single_point(args):
    from theory.population import one_steps
    steps = one_steps(args.eps, args.ratio, **setting(args), relaxations=relaxations(args))
    record = {"eps": args.eps, "ratio": args.ratio, **setting(args)}
    for name, step in steps.items():
        record.update(step.as_dict())
        record[_gap_key(name)] = record[f"risk_gap_{name}"]
        record[f"{name}_worse"] = bool(step.risk_gap > 0)
        record[f"{name}_unresolved"] = not resolved(step.risk_gap)
    # Only COAP carries the theorem's claim, so only it can make a violation; a gap that
    # underflowed to 0 (or overflowed) says nothing either way: unresolved, not a violation.
    violation = ("coap" in steps and bool(record["in_theorem_region"]) and not record["coap_worse"]
                 and not record["coap_unresolved"])
    if args.json:
        print(json.dumps(record))
    else:
        print(f"one GD step at ε = {args.eps:g}, r = {args.ratio:g} "
              f"(γ={args.gamma:g}, σ={args.sigma:g}, a={args.a:g}, b={args.b:g}, θ₁={args.theta1:g}, η={args.eta:g})")
        keys = ["grad_at", *(f"grad_{n}" for n in steps), "theta1_at", *(f"theta1_{n}" for n in steps), "risk_init",
                "risk_at", *(f"risk_{n}" for n in steps), *(_gap_key(n) for n in steps)]
        width = max(12, *(len(key) + 1 for key in keys))
        for key in keys:
            print(f"  {key:<{width}} {record[key]: .9g}")
        threshold = record["threshold_ratio"]
        shown = "none (ε outside the lemma's range)" if threshold is None else f"{threshold:.6g}"
        print(f"  sufficient r (exponent 3): {shown}")
        worse = "; ".join(f"{n.upper()} worse after the step: "
                          + ("unresolved (the risk gap underflows at these parameters)" if record[f"{n}_unresolved"]
                             else str(record[f"{n}_worse"])) for n in steps)
        print(f"  in the theorem's region: {record['in_theorem_region']}; {worse}")
    return 1 if violation else 0


def text_map(grid):
    """One row per ε/γ (largest on top), one column per r: # COAP worse in region, X violation,
    + COAP worse outside region, . COAP not worse outside."""
    symbols = np.where(grid.in_region, np.where(grid.gap > 0, "#", "X"), np.where(grid.gap > 0, "+", "."))
    lines = [f"  ε/γ  r: {grid.ratio[0]:g} … {grid.ratio[-1]:g} (log scale, {grid.ratio.size} columns)"]
    for i in reversed(range(grid.eps_ratio.size)):
        lines.append(f"  {grid.eps_ratio[i]:.3f} " + "".join(symbols[i]))
    lines.append("  legend: # COAP worse (theorem's region)  X violation  + COAP worse outside  . COAP not worse")
    return lines


def _json_floats(values):
    return [None if math.isnan(v) else v for v in np.asarray(values, dtype=float).tolist()]


def exact_boundary(eps_ratios, args):
    """Per ε/γ: the exact r* above which COAP's one-step risk is higher, and the root of the corrected
    reduction E[bracket | I*] (the weight σ(−J̃) dropped; the printed f is step 4's bound, not this)."""
    from theory.lemma import reduction_ratio
    from theory.population import critical_ratio
    eps = args.gamma * eps_ratios
    return {"eps_ratio": eps_ratios,
            "critical_ratio": critical_ratio(eps, args.gamma, args.sigma, args.a, args.b, args.theta1),
            "reduction_ratio": reduction_ratio(eps, args.gamma, args.sigma)}


def boundary_disagreements(boundary, grid):
    """Grid cells whose sign contradicts "COAP worse iff r > r*" (rows without an r* are skipped)."""
    crit = np.asarray(boundary["critical_ratio"])[:, None]
    known = np.isfinite(crit) & np.ones(grid.gap.shape, dtype=bool)
    return int(np.sum(known & ((grid.gap > 0) != (grid.ratio[None, :] > crit))))


def boundary_lines(boundary, grid):
    crit, red = np.asarray(boundary["critical_ratio"]), np.asarray(boundary["reduction_ratio"])
    known = np.isfinite(crit)
    if not np.any(known):
        return ["exact boundary: the one-step gap keeps one sign over the searched r range"]
    lines = [f"exact boundary: COAP's one-step risk is higher iff r > r*(ε); over ε/γ = "
             f"{boundary['eps_ratio'][known][0]:g}…{boundary['eps_ratio'][known][-1]:g}, "
             f"r* runs from {crit[known].max():.4g} down to {crit[known].min():.4g}; grid cells contradicting it: "
             f"{boundary_disagreements(boundary, grid)}"]
    both = known & np.isfinite(red)
    if np.any(both):
        lines.append(f"  the unweighted reduction's root (weight σ(−J̃) dropped) matches r* within "
                     f"{np.max(np.abs(red[both] / crit[both] - 1)):.1%}")
    return lines


def relaxation_map(grid):
    """The map of any relaxation: + worse than AT after the step, - better, = equal (gap exactly 0)."""
    symbols = np.where(grid.gap > 0, "+", np.where(grid.gap < 0, "-", "="))
    lines = [f"  ε/γ  r: {grid.ratio[0]:g} … {grid.ratio[-1]:g} (log scale, {grid.ratio.size} columns)"]
    lines += [f"  {grid.eps_ratio[i]:.3f} " + "".join(symbols[i]) for i in reversed(range(grid.eps_ratio.size))]
    lines.append("  legend: + worse than AT  - better  = equal (the expected gradients coincide)")
    return lines


def comparison(grid):
    """Where the relaxation's one-step robust risk is above AT's: cell counts, and per ε/γ the r range."""
    worse = grid.gap > 0
    region = {f"{e:g}": [float(grid.ratio[row].min()), float(grid.ratio[row].max())]
              for e, row in zip(grid.eps_ratio, worse) if row.any()}
    return {"cases": int(grid.gap.size), "worse": int(worse.sum()), "better": int((grid.gap < 0).sum()),
            "equal": int((grid.gap == 0).sum()), "worse_region": region}


def comparison_line(name, summary, found, grid):
    where = "nowhere" if not found["worse_region"] else (
        f"for ε/γ in {min(found['worse_region'], key=float)}…{max(found['worse_region'], key=float)}")
    return (f"{name} ({summary}): worse than AT after one step in {found['worse']} of {found['cases']} cases "
            f"({where}), better in {found['better']}, equal in {found['equal']}; |gap| ≤ "
            f"{float(np.max(np.abs(grid.gap))):.3g}")


def full_run(args):
    from theory.checks import findings, run_checks
    from theory.derivation import RELAXATIONS
    from theory.population import risk_gap_grids
    start = time.perf_counter()
    checks = run_checks()
    eps_ratios = np.arange(1, args.eps_steps + 1) / (args.eps_steps + 1)
    ratios = np.geomspace(args.ratio_min, args.ratio_max, args.ratio_steps)
    grids = risk_gap_grids(eps_ratios, ratios, **setting(args), relaxations=relaxations(args))
    found = {name: comparison(grid) for name, grid in grids.items()}
    grid = grids.get("coap")
    counts = grid.counts() if grid else {}
    boundary = exact_boundary(eps_ratios, args) if grid else None
    passed = all(c.passed for c in checks) and counts.get("violations_in_region", 0) == 0
    elapsed = time.perf_counter() - start
    if args.json:
        data = {"passed": passed, "symbolic": {c.name: c.passed for c in checks},
                "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in checks],
                "findings": findings(),
                "relaxations": {name: {**found[name], "summary": RELAXATIONS[name].summary,
                                       "risk_gap": g.gap.tolist()} for name, g in grids.items()}}
        if grid:
            data["grid"] = {**counts, "params": grid.params, "eps_ratio": grid.eps_ratio.tolist(),
                            "ratio": grid.ratio.tolist(), "risk_gap": grid.gap.tolist(),
                            "in_region_map": grid.in_region.tolist(), "threshold_ratio": _json_floats(grid.threshold)}
            data["boundary"] = {**{key: _json_floats(value) for key, value in boundary.items()},
                                "grid_cells_contradicting": boundary_disagreements(boundary, grid)}
        print(json.dumps({**data, "wall_time_s": elapsed}))
        return 0 if passed else 1
    print("checks (sympy derivation vs the printed formulas; LP, brute force and 40-digit ground truth):")
    for c in checks:
        print(f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}")
    facts = findings()
    print("findings about the printed proof:")
    print(f"  sufficient-condition exponent the proof supports: {facts.get('threshold_exponent')} (printed: 4)")
    print(f"  printed f(r) = E[{facts.get('printed_f_integrand')} | I*], not the unweighted reduction "
          f"E[{facts.get('derived_f_integrand')} | I*]: it is {facts.get('printed_f_reading')}")
    lp = facts.get("lp_on_mismatch") or {}
    if lp:
        print(f"  triangle LP on I* ({lp['instances']} random instances): optimum = AT's value b (max |Δ| "
              f"{lp['lp_minus_at_max_abs']:.1e}); COAP's fixed-slope dual lies below it by "
              f"{lp['lp_minus_coap_min']:.3g}…{lp['lp_minus_coap_max']:.3g}")
    if grid:
        print(f"grid: {counts['cases']} cases, {counts['in_region']} in the theorem's region, "
              f"{counts['violations_in_region']} violations there, COAP still worse in "
              f"{counts['coap_worse_outside_region']} cases outside it "
              f"(γ={args.gamma:g}, σ={args.sigma:g}, a={args.a:g}, b={args.b:g}, θ₁={args.theta1:g}, η={args.eta:g})")
        print("\n".join(text_map(grid)))
        print("\n".join(boundary_lines(boundary, grid)))
    for name, other in grids.items():
        if name != "coap":
            print(comparison_line(name, RELAXATIONS[name].summary, found[name], other))
            if found[name]["equal"] < found[name]["cases"]:
                print("\n".join(relaxation_map(other)))
    print(f"{'PASSED' if passed else 'FAILED'} in {elapsed:.1f} s")
    return 0 if passed else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    validate(args)
    return single_point(args) if args.eps is not None else full_run(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
