"""Speed of the large-sample linear regime (`simulate.linear --sweep --n 10000`), measured per cell.

    python -m benchmarks.linear [--n 10000] [--epochs 1] [--eps 4.5] [--repeats 2] [--reference REV]

The whole grid (6 ε × ST/AT/COAP × 3 learning rates × 100 epochs, exact line-search
training for AT, line-search evaluation of every ranked learning rate) takes too long to
time on a shared machine, so this measures its parts on the paper's data (d = 1000,
10 000 test points) and extrapolates:

* one training epoch per method (AT with the line search as its training attack);
* one evaluation (exact line search along e₁ + the COAP bound) of the test set.

Each part is timed with this tree's code and with the reference: the same measurement
run on the code of git revision `--reference` (default `REFERENCE`, main before this
round of speed work), unpacked with `git archive` into a temporary folder.  Both run in
worker processes on one thread, alternating so they share the machine's load; the best
of `--repeats` is kept, and CPU seconds are printed beside wall seconds, since wall time
on a loaded machine overstates.

The extrapolation assumes every learning rate of every cell is trained and ranked (3
evaluations per cell, the chosen one reused), which is the worst case: the search skips the
rates below one that interpolates with zero robust and zero standard error
(`simulate.training.lr_search`), which at n = 10⁴ is most cells.  ST trains once per
learning rate for all budgets (`simulate.training.TrainedRuns`, in both trees).  `--jobs 2`
divides it by at most 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from realdata.errors import UserError, run_main

#: main when this round of speed work began (all-kinks line search, ST shared across budgets,
#: the 2023 geometry study): the reference the ratios are taken against
REFERENCE = "02fff1825e861166fda5777ba2711f07ee273d7f"
METHODS = ("st", "at", "coap")
PARTS = METHODS + ("eval",)
ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the worker (either tree)

def _timed(job) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    job()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(n: int, epochs: int, eps: float) -> dict:
    """{part: (wall s, cpu s)} for `epochs` epochs per method and one evaluation, with the
    `realdata` found first on the path (this tree's or the reference's)."""
    import torch
    from realdata.data import load_dataset
    from realdata.evaluate import evaluate
    from realdata.models import build_model
    from realdata.recipes import from_synthetic
    from realdata.synthetic import LINEAR_PRESETS
    from realdata.train import build_threat, fit

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as simulate.runner does during a run
    config = replace(LINEAR_PRESETS["paper"], n=n, eps=eps, epochs=epochs)
    dataset = load_dataset("linear", seed=0, **config.data_params())
    # warm-up: the first fit imports the optimiser's compiler hooks (seconds), which is no step's cost
    small = replace(config, n=100, n_test=10, epochs=1)
    fit(from_synthetic(small), load_dataset("linear", seed=0, **small.data_params()),
        build_model("mlp", dataset, seed=0, width=config.width, depth=1), progress=False)
    times, model, threat = {}, None, None
    for method in METHODS:
        base = from_synthetic(replace(config, method=method))
        threat = build_threat(base, dataset)
        model = build_model(base.arch, dataset, seed=0, width=base.width, depth=base.depth)
        times[method] = _timed(lambda: fit(base, dataset, model, threat=threat, progress=False))
    times["eval"] = _timed(lambda: evaluate(model, dataset.x_test, dataset.y_test, threat, attack="line-search",
                                            bound="coap", num_classes=2, signal=dataset.signal, box=None,
                                            batch_size=2000, progress=False))
    return times


def worker(args) -> int:
    import realdata

    print(json.dumps({"realdata": realdata.__file__, "times": measure(args.n, args.epochs, args.eps)}))
    return 0


# --------------------------------------------------------------------------- the driver

def unpack(revision: str, into: Path) -> Path:
    """The files of `revision` of this repository under `into` (git archive)."""
    archive = into / "reference.tar"
    try:
        with open(archive, "wb") as out:
            subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision], stdout=out, check=True,
                           stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise UserError(f"cannot unpack the reference revision {revision!r} with git archive "
                        f"({detail.decode().strip() or err}); pass --reference with a revision of this clone.") from None
    tree = into / "reference"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run_worker(tree: Path, args) -> dict:
    """One measurement in a fresh one-thread process whose `realdata` is `tree`'s."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(args.n),
               "--epochs", str(args.epochs), "--eps", str(args.eps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the measurement on {tree} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["realdata"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the worker for {tree} imported {result['realdata']}; is realdata installed elsewhere?")
    return {part: tuple(t) for part, t in result["times"].items()}


def extrapolate(times: dict, epochs: int, grid_eps: int, lrs: int, full_epochs: int) -> float:
    """CPU seconds of the whole grid from the measured parts."""
    per_epoch = {m: times[m][1] / epochs for m in METHODS}
    trainings = lrs * per_epoch["st"] + grid_eps * lrs * (per_epoch["at"] + per_epoch["coap"])
    return full_epochs * trainings + len(METHODS) * grid_eps * lrs * times["eval"][1]


def main(argv=None) -> int:
    # plain argparse and a check of its own, not realdata.cli's Parser and positive_int: this file
    # also runs as the worker with the reference revision's realdata, which predates them
    p = argparse.ArgumentParser(prog="python -m benchmarks.linear", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--n", type=int, default=10_000, help="training points (default 10000, the large-sample regime)")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per method (default 1)")
    p.add_argument("--eps", type=float, default=4.5, help="budget along e₁ (default 4.5)")
    p.add_argument("--repeats", type=int, default=2, help="timings per part and tree; the best is kept (default 2)")
    p.add_argument("--reference", default=REFERENCE,
                   help=f"git revision whose code is the reference (default {REFERENCE[:10]}, see REFERENCE)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one measurement, as JSON
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if min(args.n, args.epochs, args.repeats) < 1 or not 0 < args.eps < math.inf:
        raise UserError("--n, --epochs and --repeats must be positive integers and --eps a positive finite number.")
    with tempfile.TemporaryDirectory(prefix="bench-linear-") as tmp:
        trees = {"ours": ROOT, "reference": unpack(args.reference, Path(tmp))}
        best = {name: {} for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():  # alternating: both see the same stretch of the machine's load
                for part, t in run_worker(tree, args).items():
                    best[name][part] = min(best[name].get(part, t), t, key=lambda w_c: w_c[1])
    load = os.getloadavg()[0]
    from realdata.synthetic import LINEAR_EPS_GRIDS, LINEAR_PRESETS

    config = LINEAR_PRESETS["paper"]
    print(f"linear regime n={args.n}, d={config.d}, {config.n_test} test points, one thread; load average "
          f"{load:.1f} at the end; best of {args.repeats}; reference {args.reference[:10]}")
    print(f"{'part':24s} {'ours wall/cpu s':>16s} {'reference wall/cpu s':>21s} {'cpu ratio':>9s}")
    for part in PARTS:
        ours, ref = best["ours"][part], best["reference"][part]
        label = f"{part} ({args.epochs} epoch)" if part != "eval" else "evaluation (test set)"
        print(f"{label:24s} {ours[0]:7.2f} / {ours[1]:7.2f} {ref[0]:10.2f} / {ref[1]:7.2f} {ref[1] / ours[1]:9.2f}")
    grid = (len(LINEAR_EPS_GRIDS[10_000]), len(config.lrs), config.epochs)
    ours, ref = (extrapolate(best[name], args.epochs, *grid) for name in ("ours", "reference"))
    print(f"whole grid (6 ε × 3 methods × 3 lrs × {config.epochs} epochs), extrapolated CPU time: "
          f"ours {ours / 60:.1f} min, reference {ref / 60:.1f} min, ratio {ref / ours:.2f}x; "
          f"with --jobs 2 on 2 idle cores ours is at best {ours / 120:.1f} min wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
