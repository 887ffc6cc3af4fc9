"""Concentric spheres: ST, AT and COAP on two shells, with the papers' learning-rate rule.

    python -m simulate.spheres --eps 0.5                     # 2022 setting, ST/AT/COAP, a table
    python -m simulate.spheres --preset 2023 --eps 1,2,3,4   # 2023 setting
    python -m simulate.spheres --eps 1.0 --per-epoch         # alignment and robust error per epoch
    python -m simulate.spheres --preset 2023 --k 5 --eps 4   # signal-aligned threat, 5 random directions

Data come from `realdata.data` ("spheres"), the one-hidden-layer ReLU net from
`realdata.models`, training from `realdata.train.fit` (the TrainConfig of
`realdata.recipes`' spheres recipe with this run's values), evaluation from
`realdata.evaluate` (Auto-PGD CE+DLR, or the exact line search for the `--k`
threat; certified error and unstable ReLUs from the COAP bound; alignment of the
attack's perturbations with the radial signal).  Each (method, ε, seed) trains at
every learning rate of the grid; `simulate.lr_rule` keeps one.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from realdata.cli import Parser
from realdata.data import load_dataset
from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.evaluate import evaluate
from realdata.methods import METHODS as TRAINING, TRAIN_METHODS
from realdata.recipes import from_synthetic
from realdata.synthetic import (FIGURES_2023, METHODS, SPHERE_NORMS, SPHERES_2023_CHOICE, SPHERES_PRESETS, SpheresConfig,
                                preset_help, text)
from realdata.train import build_threat
from realdata.validate import FIELD_LIMITS, check_number
from simulate.runner import (add_common_arguments, format_table, group_means, parse_methods,
                             parse_numbers, positive_overrides, print_json, print_lr_report)
from simulate.paper2023 import figure_table
from simulate.training import TrainedRuns, run_searched, searched_record

KIND = "spheres"
NORMS = SPHERE_NORMS
PRESETS = SPHERES_PRESETS


def _attack_options(config: SpheresConfig) -> dict:
    """The evaluation attack's options (the line search takes none)."""
    return {} if config.eval_attack == "line-search" else {"steps": config.eval_steps, "restarts": config.eval_restarts}


def _evaluators(config: SpheresConfig, dataset, threat, progress: bool):
    """(final evaluation, ranking evaluation or None) of a trained model on the test set."""
    x, y = dataset.x_test, dataset.y_test

    def final(model):
        options = _attack_options(config)
        # one batch for the whole test set: with a net this small, large products cost least per point
        return evaluate(model, x, y, threat, attack=config.eval_attack, bound="coap", num_classes=dataset.num_classes,
                        signal=dataset.signal, box=None, batch_size=len(y), progress=progress, **options)

    def rank(model):
        # Ranking the learning rates by Auto-PGD-CE with one restart instead of CE+DLR with five
        # restarts each: on two classes DLR's ascent direction equals CE's (both follow the
        # margin), and the extra restarts cost 10x for a ranking they rarely change.
        return evaluate(model, x, y, threat, attack="apgd-ce", bound=None, num_classes=dataset.num_classes,
                        box=None, batch_size=len(y), progress=progress, steps=config.eval_steps,
                        restarts=config.select_restarts)

    return final, (None if config.eval_attack == "line-search" else rank)


def _per_epoch(config: SpheresConfig, dataset, threat):
    """Callback: alignment of the training points' attack perturbations with the radial signal
    (2022 Fig 5), their fraction of unstable ReLUs, and the robust error on the first
    `per_epoch_test` test points."""
    if config.k is not None:
        attack, options = "line-search", {}
    else:
        attack, options = "apgd-ce", {"steps": config.at_steps, "restarts": 1}
    x_probe, y_probe = dataset.x_test[:config.per_epoch_test], dataset.y_test[:config.per_epoch_test]

    def callback(epoch, model, entry):
        # COAP bounds on the training points: the unstable ReLUs the 2023 bar charts sum over epochs
        train = evaluate(model, dataset.x_train, dataset.y_train, threat, attack=attack, bound="coap",
                         signal=dataset.signal, batch_size=len(dataset.y_train), progress=False, **options)
        test = evaluate(model, x_probe, y_probe, threat, attack=attack, bound=None, batch_size=len(y_probe),
                        progress=False, **options)
        return {"alignment": train["alignment"], "train_robust_error": train["robust_error"],
                "unstable_fraction": train["unstable_fraction"], "robust_error": test["robust_error"],
                "standard_error": test["standard_error"]}
    return callback


def run_one(config: SpheresConfig, progress: bool = True, checkpoint=None, trained: TrainedRuns | None = None):
    base = from_synthetic(config)  # the lr is set by the search
    dataset = load_dataset("spheres", seed=config.seed, **config.data_params())
    threat = build_threat(base, dataset)
    callback = _per_epoch(config, dataset, threat) if config.per_epoch else None
    final, rank = _evaluators(config, dataset, threat, progress)
    return searched_record(config, base, dataset, threat, final, attack=config.eval_attack,
                           attack_options=_attack_options(config), select_fn=rank, callback=callback,
                           progress=progress, checkpoint=checkpoint, trained=trained)


def run_spheres(configs, out="results", force: bool = False, progress: bool = True, jobs: int = 1) -> list[dict]:
    """Run each `SpheresConfig` (one record each): `simulate.training.run_searched`."""
    return run_searched(KIND, run_one, configs, out=out, force=force, progress=progress, jobs=jobs)


# --------------------------------------------------------------------------- report

def summary_rows(records: list[dict]) -> list[dict]:
    """One row per (method, threat, ε): means over the seeds present, errors in %."""
    rows = group_means(records, ("method", "norm", "k", "eps"),
                       {"train": "train_error", "std": "standard_error", "rob": "robust_error",
                        "cert": "certified_error", "unst": "unstable_fraction", "align": "alignment",
                        "gap": "tightness"},
                       percent=("train", "std", "rob", "cert", "unst"))
    for row in rows:
        row["threat"] = f"k={row['k']}" if row["k"] else row["norm"]
    return sorted(rows, key=lambda r: (r["eps"], TRAIN_METHODS.index(r["method"].lower())))


def table(records: list[dict]) -> str:
    return format_table(summary_rows(records), [
        ("method", "method", "{}"), ("threat", "threat", "{}"), ("eps", "eps", "{:g}"), ("seeds", "seeds", "{}"),
        ("lrs", "lr", "{}"), ("train", "train err %", "{:.1f}"), ("std", "std err %", "{:.2f}"),
        ("rob", "robust err %", "{:.2f}"), ("cert", "cert err %", "{:.2f}"), ("unst", "unstable %", "{:.1f}"),
        ("align", "cos(δ,signal)", "{:.3f}"), ("gap", "looseness", "{:.3g}"), ("time", "time s", "{:.0f}")])


# --------------------------------------------------------------------------- command line

def build_parser() -> Parser:
    d = PRESETS["2022"]
    p = Parser(prog="python -m simulate.spheres",
               description=f"Concentric spheres (docs/PAPER.md §3): train ST, AT (Auto-PGD, {d.at_steps} steps) and COAP on "
                           "two shells, pick each method's learning rate by the papers' rule (interpolate the training "
                           "set, then lowest test robust error), and print per method the standard, robust (Auto-PGD "
                           f"{d.eval_steps} iterations, {d.eval_restarts} restarts, CE then DLR) and certified (COAP) "
                           "test errors, the percentage of unstable ReLUs and the mean cosine between attack "
                           "perturbations and the radial signal direction. Defaults are the 2022 setting "
                           f"(realdata.synthetic.SPHERES_PRESETS): d={d.d}, n={d.n}, radii {d.r0:g} and "
                           f"{d.r0 + d.margin:g} (INFERRED from 'gamma_min = 1, gamma_max = 12'), {d.width} hidden "
                           f"ReLUs, SGD momentum {d.momentum:g}, {d.epochs} epochs, batch {d.batch_size} (INFERRED), "
                           f"lr from {text(d.lrs)}, {d.n_test} test points (the paper used 100 000). The learning "
                           "rates that interpolate are ranked by Auto-PGD-CE with --rank-restarts restarts (on two "
                           "classes DLR follows the same margin as CE); only the chosen model gets the full "
                           "evaluation.")
    p.add_argument("--preset", choices=tuple(PRESETS), default="2022",
                   help=preset_help(PRESETS) + ". Quick is a CPU-scale choice of this toolkit; 2023's optimisation "
                                               "is INFERRED as 2022's. " + SPHERES_2023_CHOICE.replace("%", "%%"))
    p.add_argument("--eps", default=None,
                   help=f"budget(s) ε, comma-separated, e.g. 0.5 or 0.1,0.5,1.0 (default: the preset's, {d.eps:g} for 2022)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated training methods (default {','.join(METHODS)}): "
                        + "; ".join(f"{m.name}: {m.summary}" for m in TRAINING.values()))
    p.add_argument("--norm", choices=NORMS, default=None, help="threat model: the l2 or linf ball (default l2)")
    p.add_argument("--k", type=int, default=None,
                   help="instead of a norm ball, the signal-aligned set of K random orthonormal directions "
                        "(2023; union of segments, convex hull the l1 ball in their span), fixed per seed; robust "
                        "error by exact line search along each direction")
    p.add_argument("--margin", type=float, default=None, help="gap r1 − r0 between the shells (default: the preset's, "
                   + ", ".join(f"{k}: {c.margin:g}" for k, c in PRESETS.items()) + ")")
    p.add_argument("--radii", default=None, help="the two radii r0,r1 (must increase), e.g. 1,12; overrides --margin")
    p.add_argument("--d", type=int, default=None, help=f"input dimension (default: the preset's, {d.d} for 2022)")
    p.add_argument("--n", type=int, default=None, help=f"training points (default: the preset's, {d.n} for 2022)")
    p.add_argument("--n-test", type=int, default=None, help=f"test points (default: {d.n_test}; the paper used 100000)")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default: the preset's, {d.epochs})")
    p.add_argument("--batch-size", type=int, default=None, help=f"SGD batch size (INFERRED default {d.batch_size})")
    p.add_argument("--lrs", default=None, help=f"learning-rate grid the rule picks from (default {text(d.lrs)})")
    p.add_argument("--eval-steps", type=int, default=None, help=f"Auto-PGD iterations at evaluation (default {d.eval_steps})")
    p.add_argument("--eval-restarts", type=int, default=None,
                   help=f"Auto-PGD restarts per loss at evaluation (default {d.eval_restarts})")
    p.add_argument("--rank-restarts", type=int, default=None,
                   help=f"Auto-PGD-CE restarts when ranking the learning rates (default {d.select_restarts})")
    p.add_argument("--per-epoch", action="store_true",
                   help="after every epoch record the mean cosine between the training points' attack perturbations "
                        "and the radial signal, their fraction of unstable ReLUs (COAP bounds), and the robust error "
                        f"on the first {d.per_epoch_test} test points (the poster's 'large eps' plots); costs one short attack per "
                        "epoch")
    p.add_argument("--figure", choices=tuple(FIGURES_2023), default=None,
                   help="run one figure of the 2023 paper and print its table (mean ± standard error over seeds; "
                        "COAP's per-epoch Σ_t unstable fraction): " + "; ".join(
                            f"{name}: {g.title}" for name, g in FIGURES_2023.items())
                        + ". Fixes the threat, budgets and radii; the run-size flags (--epochs, --n-test, --lrs, "
                          "...) still apply. Draw it with python -m figures.paper2023")
    add_common_arguments(p, seeds_note="; with --figure the paper's 5 runs, 0,1,2,3,4")
    return p


def configs_from_args(args) -> list[SpheresConfig]:
    if args.figure is not None:
        return figure_configs(args)
    base = PRESETS[args.preset]
    changes = {"norm": args.norm or base.norm}
    if args.k is not None:
        changes.update(norm="directions", k=args.k)
    if args.radii is not None:
        radii = parse_numbers(args.radii, "--radii")
        if len(radii) != 2:
            raise UserError(f"--radii takes two numbers r0,r1, got {args.radii!r}.")
        if not radii[0] < radii[1]:
            raise UserError(f"the sphere radii must increase (r0 < r1), got {args.radii!r}.")
        for radius in radii:  # named as --radii, not as the margin r1 − r0 they become
            check_number("r0", radius, *FIELD_LIMITS["margin"][:2])
        changes.update(r0=radii[0], margin=radii[1] - radii[0])
    elif args.margin is not None:
        if not args.margin > 0:
            raise UserError(f"--margin must be positive (the outer radius must exceed the inner one), got {args.margin}.")
        changes["margin"] = args.margin
    changes.update(_run_sizes(args))
    changes["per_epoch"] = args.per_epoch
    base = replace(base, **changes)
    eps_values = parse_list(args.eps, parse_eps) if args.eps is not None else [base.eps]
    methods = parse_methods(args.methods, TRAIN_METHODS)
    return [replace(base, method=m, eps=e, seed=s) for s in parse_seeds(args.seeds or "0") for e in eps_values
            for m in methods]


def _run_sizes(args) -> dict:
    """The flags that size a run (not its setting): they apply to a --figure grid too."""
    sizes = positive_overrides(args, ("d", "n", "n_test", "epochs", "batch_size", "eval_steps", "eval_restarts",
                                      "rank_restarts"))
    if "rank_restarts" in sizes:
        sizes["select_restarts"] = sizes.pop("rank_restarts")
    if args.lrs is not None:
        sizes["lrs"] = parse_numbers(args.lrs, "--lrs")
    return sizes


def figure_configs(args) -> list[SpheresConfig]:
    """A 2023 figure's grid (`realdata.synthetic.FIGURES_2023`), sized by the run-size flags."""
    given = [flag for flag, value in (("--eps", args.eps), ("--k", args.k), ("--norm", args.norm),
                                      ("--margin", args.margin), ("--radii", args.radii)) if value is not None]
    if given:
        raise UserError(f"--figure {args.figure} fixes the threat, budgets and radii; drop {', '.join(given)}.")
    grid = FIGURES_2023[args.figure]
    methods = parse_methods(args.methods, TRAIN_METHODS)
    sizes = _run_sizes(args)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else grid.seeds
    return [replace(c, **sizes) for c in grid.configs(seeds) if c.method in methods]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configs = configs_from_args(args)
    began = time.perf_counter()
    records = run_spheres(configs, out=args.out, force=args.force, progress=not args.quiet, jobs=args.jobs)
    if args.json:
        print_json(records)
        return 0
    c = configs[0]
    if args.figure is not None:
        grid = FIGURES_2023[args.figure]
        print_lr_report(records, f"2023 figure {args.figure} ({grid.title}): spheres d={c.d}, n={c.n}, R0={c.r0:g}, "
                                 f"{c.epochs} epochs, {c.n_test} test points; mean ± standard error over seeds",
                        [figure_table(records, args.figure)], args.out, began)
        return 0
    print_lr_report(records, f"concentric spheres, preset {c.preset}: d={c.d}, n={c.n}, radii {c.r0:g} and "
                             f"{c.r0 + c.margin:g}, {c.n_test} test points, {c.eval_attack} evaluation; errors in % of "
                             "the test set, learning rate by the rule", [table(records)], args.out, began)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
