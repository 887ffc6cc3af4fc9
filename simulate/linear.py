"""The signal-directed linear experiment of the 2022 paper (docs/PAPER.md §2, workshop Fig 6).

    python -m simulate.linear --n 50 --eps 4.5                   # one cell: ST, AT and COAP
    python -m simulate.linear --sweep --n 50 --seeds 0,1,2       # the paper's ε grid at n = 50
    python -m simulate.linear --sweep --n 50,10000               # both regimes

Data: the theorem's distribution with d = 1000, γ = 6, σ = 1 (`realdata.data` "linear");
perturbations along the signal direction e₁ only (`Directions` threat).  A two-layer net
with 100 hidden ReLUs (`realdata.models`) is trained by SGD for 100 epochs
(`realdata.train.fit`) with ST, AT or COAP at each learning rate of {0.1, 0.01, 0.001};
`simulate.lr_rule` keeps the one that interpolates the training set with the lowest test
robust error.  Robust error is exact: the line search along e₁ (`realdata.attacks`);
certified error and unstable ReLUs come from the COAP bound.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from realdata.cli import Parser
from realdata.data import load_dataset
from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.evaluate import evaluate
from realdata.methods import METHODS as TRAINING, TRAIN_ATTACKS, TRAIN_METHODS
from realdata.recipes import from_synthetic
from realdata.synthetic import LINEAR_EPS_GRIDS, LINEAR_PRESETS, METHODS, LinearConfig, text, preset_help
from realdata.train import build_threat
from simulate.runner import (add_common_arguments, format_table, group_means, parse_methods,
                             parse_numbers, positive_overrides, print_json, print_lr_report)
from simulate.training import TrainedRuns, run_searched, searched_record

KIND = "linear"
PRESETS = LINEAR_PRESETS
EPS_GRIDS = LINEAR_EPS_GRIDS


def run_one(config: LinearConfig, progress: bool = True, checkpoint=None, trained: TrainedRuns | None = None):
    base = from_synthetic(config)  # the lr is set by the search
    dataset = load_dataset("linear", seed=config.seed, **config.data_params())
    threat = build_threat(base, dataset)  # {β e₁ : |β| ≤ ε}

    def exact(model):
        # the exact line search ranks the learning rates and evaluates the chosen one: one definition
        return evaluate(model, dataset.x_test, dataset.y_test, threat, attack="line-search", bound="coap",
                        num_classes=dataset.num_classes, signal=dataset.signal, box=None,
                        batch_size=2000, progress=progress)

    return searched_record(config, base, dataset, threat, exact, attack="line-search", progress=progress,
                           checkpoint=checkpoint, trained=trained)


def run_linear(configs, out="results", force: bool = False, progress: bool = True, jobs: int = 1) -> list[dict]:
    """Run each `LinearConfig` (one record each): `simulate.training.run_searched`."""
    return run_searched(KIND, run_one, configs, out=out, force=force, progress=progress, jobs=jobs)


# --------------------------------------------------------------------------- report

def summary_rows(records: list[dict]) -> list[dict]:
    rows = group_means(records, ("n", "method", "eps"),
                       {"train": "train_error", "std": "standard_error", "rob": "robust_error",
                        "cert": "certified_error", "unst": "unstable_fraction", "gap": "tightness"},
                       percent=("train", "std", "rob", "cert", "unst"))
    return sorted(rows, key=lambda r: (r["n"], r["eps"], TRAIN_METHODS.index(r["method"].lower())))


def table(records: list[dict]) -> str:
    return format_table(summary_rows(records), [
        ("n", "n", "{}"), ("eps", "eps", "{:g}"), ("method", "method", "{}"), ("seeds", "seeds", "{}"),
        ("lrs", "lr", "{}"), ("train", "train err %", "{:.1f}"), ("std", "std err %", "{:.2f}"),
        ("rob", "robust err %", "{:.2f}"), ("cert", "cert err %", "{:.2f}"), ("unst", "unstable %", "{:.1f}"),
        ("gap", "looseness", "{:.3g}"), ("time", "time s", "{:.0f}")])


def curves(records: list[dict]) -> str:
    """Robust error (%) against ε, one column per method: the figure's curves as text."""
    rows = {}
    for row in summary_rows(records):
        rows.setdefault((row["n"], row["eps"]), {"n": row["n"], "eps": row["eps"]})[row["method"]] = row["rob"]
    methods = [m.upper() for m in TRAIN_METHODS if any(r["method"].lower() == m for r in summary_rows(records))]
    return format_table(list(rows.values()), [("n", "n", "{}"), ("eps", "eps", "{:g}")]
                        + [(m, f"{m} robust %", "{:.2f}") for m in methods])


# --------------------------------------------------------------------------- command line

def build_parser() -> Parser:
    d = PRESETS["paper"]
    grids = "; ".join(f"n={n}: {','.join(f'{e:g}' for e in g)}" for n, g in EPS_GRIDS.items())
    p = Parser(prog="python -m simulate.linear",
               description="The signal-directed linear experiment (docs/PAPER.md §2, 2022 workshop Fig 6): y = ±1, x₁ = γy, "
                           f"x_2..x_d ~ N(0, σ²), perturbations along e₁ only. Trains a two-layer net ({d.width} ReLUs) "
                           f"with ST, AT and COAP by SGD, picks each method's learning rate from {text(d.lrs)} by the "
                           "rule (interpolate the training set, then lowest test robust error), and reports standard, "
                           "exact robust (line search along e₁) and certified (COAP) test errors. Defaults "
                           f"(realdata.synthetic.LINEAR_PRESETS): d={d.d}, γ={d.gamma:g}, σ={d.sigma:g} (INFERRED), "
                           f"{d.epochs} epochs, batch {d.batch_size} (INFERRED), momentum {d.momentum:g} (INFERRED), "
                           f"{d.n_test} test points (INFERRED). --sweep runs the paper's ε grids ({grids}; spacing "
                           "INFERRED).")
    p.add_argument("--preset", choices=tuple(PRESETS), default="paper",
                   help=preset_help(PRESETS) + " (quick is a CPU-scale choice of this toolkit)")
    p.add_argument("--n", default=str(d.n), help=f"training-set size(s), comma-separated (default {d.n}; the paper: "
                                                  f"{text(tuple(EPS_GRIDS))})")
    p.add_argument("--eps", default=None, help=f"budget(s) ε along e₁, comma-separated (default {d.eps}; with --sweep "
                                                "the paper's grid for each n)")
    p.add_argument("--sweep", action="store_true", help="run the paper's ε grid for each --n (see above)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated training methods (default {','.join(METHODS)}): "
                        + "; ".join(f"{m.name}: {m.summary}" for m in TRAINING.values()))
    p.add_argument("--d", type=int, default=None, help=f"input dimension (default: the preset's, {d.d})")
    p.add_argument("--gamma", type=float, default=None, help=f"signal strength γ (default {d.gamma})")
    p.add_argument("--n-test", type=int, default=None, help=f"test points (default: the preset's, {d.n_test})")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default: the preset's, {d.epochs})")
    p.add_argument("--batch-size", type=int, default=None, help=f"SGD batch size (INFERRED default {d.batch_size})")
    p.add_argument("--lrs", default=None, help=f"learning-rate grid the rule picks from (default {text(d.lrs)})")
    p.add_argument("--at-attack", choices=tuple(TRAIN_ATTACKS), default=None,
                   help=f"AT's training attack along e₁ (default {d.at_attack}: the exact worst case, as in the "
                        f"paper; apgd/pgd take {d.at_steps} steps)")
    add_common_arguments(p)
    return p


def configs_from_args(args) -> list[LinearConfig]:
    changes = positive_overrides(args, ("d", "n_test", "epochs", "batch_size"))
    if args.gamma is not None:
        if not args.gamma > 0:
            raise UserError(f"--gamma must be positive, got {args.gamma}.")
        changes["gamma"] = args.gamma
    if args.lrs is not None:
        changes["lrs"] = parse_numbers(args.lrs, "--lrs")
    if args.at_attack is not None:
        changes["at_attack"] = args.at_attack
    base = replace(PRESETS[args.preset], **changes)

    def size(text):
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise UserError(f"--n takes positive integers such as 50,10000, got {text!r}.")
        return value

    ns = parse_list(args.n, size)
    if args.eps is not None:
        grid = {n: tuple(parse_list(args.eps, parse_eps)) for n in ns}
    elif args.sweep:
        missing = [n for n in ns if n not in EPS_GRIDS]
        if missing:
            raise UserError(f"the paper gives ε grids for n = 50 and n = 10000 only, not n = {missing[0]}; "
                            "pass --eps for other sizes.")
        grid = {n: EPS_GRIDS[n] for n in ns}
    else:
        grid = {n: (base.eps,) for n in ns}
    methods = parse_methods(args.methods, TRAIN_METHODS)
    return [replace(base, n=n, eps=e, method=m, seed=s)
            for s in parse_seeds(args.seeds) for n in ns for e in grid[n] for m in methods]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configs = configs_from_args(args)
    began = time.perf_counter()
    records = run_linear(configs, out=args.out, force=args.force, progress=not args.quiet, jobs=args.jobs)
    if args.json:
        print_json(records)
        return 0
    c = configs[0]
    sections = [table(records)]
    if len({r['config']['eps'] for r in records}) > 1:
        sections.append("\nrobust error against ε (mean over seeds):\n" + curves(records))
    print_lr_report(records, f"linear distribution, preset {c.preset}: d={c.d}, γ={c.gamma:g}, σ={c.sigma:g}, "
                             f"threat along e₁, {c.n_test} test points, exact line-search evaluation; errors in % of "
                             "the test set", sections, args.out, began)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
