"""How the 2023 spheres results depend on what the paper leaves open (docs/PAPER.md §3).

    python -m simulate.geometry                                   # inner radius R₀, the default grid
    python -m simulate.geometry --r0 1,10,50 --batch-sizes 50,500 --epochs 60 --n-test 2000

The 2023 paper fixes d = 10, n = 500 and the margin γ = R₁ − R₀ = 20 but not the radii, the
batch size or the output layer.  Each choice trains AT and COAP (learning rate by the rule)
in the two settings the paper quantifies:

* ℓ2 ε = 4 — "COAP's robust error near one half, AT's far lower";
* k = 10 signal-aligned directions at ε = 5 — gaps "up to 25 % standard, 45 % robust".

and tabulates standard and robust test error per choice, with the COAP − AT gaps, so the
preset can be chosen by the paper's own statements (`realdata.synthetic.SPHERES_PRESETS`).
The output layer is not varied: the net has two logits, and for two classes cross-entropy
on two logits is the logistic loss of their difference, i.e. the single-logit model.
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

from realdata.cli import Parser
from realdata.errors import parse_seeds, run_main
from realdata.synthetic import SPHERES_PRESETS, text
from simulate.runner import add_common_arguments, format_table, parse_numbers, positive_overrides, print_json
from simulate.spheres import run_spheres

METHODS = ("at", "coap")
SETTINGS = {
    "l2 eps=4": dict(norm="l2", k=None, eps=4.0),
    "k=10 eps=5": dict(norm="directions", k=10, eps=5.0),
}
DEFAULT_R0 = (1.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def study_configs(r0s, batch_sizes, seeds, **changes) -> list:
    base = replace(SPHERES_PRESETS["2023"], **changes)
    return [replace(base, r0=r0, batch_size=b, method=m, seed=s, **setting)
            for s in seeds for setting in SETTINGS.values() for r0 in r0s for b in batch_sizes for m in METHODS]


def _setting(config: dict) -> str:
    return next(name for name, s in SETTINGS.items() if all(config.get(k) == v for k, v in s.items()))


def study_rows(records: list[dict]) -> list[dict]:
    """One row per (setting, R₀, batch size): AT's and COAP's errors (%) and the COAP − AT gaps."""
    rows: dict = {}
    for r in records:
        c = r["config"]
        key = (_setting(c), c["r0"], c["batch_size"])
        row = rows.setdefault(key, {"setting": key[0], "r0": key[1], "batch": key[2], "seeds": set()})
        row["seeds"].add(c["seed"])
        for metric, short in (("standard_error", "std"), ("robust_error", "rob")):
            row.setdefault(f"{c['method']}_{short}", []).append(100 * r["metrics"][metric])
    out = []
    for row in rows.values():
        for k in [k for k in row if k.endswith(("_std", "_rob"))]:
            row[k] = sum(row[k]) / len(row[k])
        row["seeds"] = len(row["seeds"])
        for short in ("std", "rob"):
            if f"coap_{short}" in row and f"at_{short}" in row:
                row[f"gap_{short}"] = row[f"coap_{short}"] - row[f"at_{short}"]
        out.append(row)
    return sorted(out, key=lambda r: (r["setting"], r["r0"], r["batch"]))


def table(records: list[dict]) -> str:
    return format_table(study_rows(records), [
        ("setting", "setting", "{}"), ("r0", "R0", "{:g}"), ("batch", "batch", "{}"), ("seeds", "seeds", "{}"),
        ("at_std", "AT std %", "{:.1f}"), ("at_rob", "AT rob %", "{:.1f}"), ("coap_std", "COAP std %", "{:.1f}"),
        ("coap_rob", "COAP rob %", "{:.1f}"), ("gap_std", "gap std", "{:+.1f}"), ("gap_rob", "gap rob", "{:+.1f}")])


def build_parser() -> Parser:
    d = SPHERES_PRESETS["2023"]
    p = Parser(prog="python -m simulate.geometry", description=" ".join(__doc__.split("\n\n")[2:]).replace("\n", " "),
               epilog="Settings: " + "; ".join(SETTINGS) + f". Base: the 2023 preset (d={d.d}, n={d.n}, "
                      f"margin {d.margin:g}, {d.epochs} epochs, lr by the rule from {text(d.lrs)}).")
    p.add_argument("--r0", default=text(DEFAULT_R0), help=f"inner radii R0 to try (default {text(DEFAULT_R0)})")
    p.add_argument("--batch-sizes", default=str(d.batch_size),
                   help=f"SGD batch sizes to try (default {d.batch_size}; the full batch is {d.n})")
    p.add_argument("--epochs", type=int, default=None, help=f"training epochs (default the preset's, {d.epochs})")
    p.add_argument("--n-test", type=int, default=None, help=f"test points (default the preset's, {d.n_test})")
    p.add_argument("--eval-steps", type=int, default=None,
                   help=f"Auto-PGD iterations at the ℓ2 evaluation (default {d.eval_steps})")
    p.add_argument("--eval-restarts", type=int, default=None,
                   help=f"Auto-PGD restarts per loss at the ℓ2 evaluation (default {d.eval_restarts})")
    p.add_argument("--lrs", default=None, help=f"learning-rate grid the rule picks from (default {text(d.lrs)})")
    add_common_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    r0s = parse_numbers(args.r0, "--r0")
    batches = [int(b) for b in parse_numbers(args.batch_sizes, "--batch-sizes")]
    changes = positive_overrides(args, ("epochs", "n_test", "eval_steps", "eval_restarts"))
    if args.lrs is not None:
        changes["lrs"] = parse_numbers(args.lrs, "--lrs")
    configs = study_configs(r0s, batches, parse_seeds(args.seeds), **changes)
    began = time.perf_counter()
    records = run_spheres(configs, out=args.out, force=args.force, progress=not args.quiet, jobs=args.jobs)
    if args.json:
        print_json(records)
        return 0
    c = configs[0]
    print(f"2023 spheres geometry: d={c.d}, n={c.n}, margin {c.margin:g}, {c.epochs} epochs, {c.n_test} test points, "
          f"ℓ2 by Auto-PGD ({c.eval_steps} it., {c.eval_restarts} restarts), k by exact line search; errors in %, "
          "mean over seeds")
    print(table(records))
    print(f"wall time {time.perf_counter() - began:.0f}s; records in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
