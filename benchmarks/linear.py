"""Speed of the large-sample linear regime (`simulate.linear --sweep --n 10000`), measured per cell.

    python -m benchmarks.linear [--n 10000] [--epochs 1] [--eps 4.5] [--repeats 2]

The whole grid (6 ε × ST/AT/COAP × 3 learning rates × 100 epochs, exact line-search
training for AT, line-search evaluation of every ranked learning rate) takes too long to
time on a shared machine, so this measures its parts on the paper's data (d = 1000,
10 000 test points) and extrapolates:

* one training epoch per method (AT with the line search as its training attack);
* one evaluation (exact line search along e₁ + the COAP bound) of the test set.

Each part is timed with today's implementation and with the reference it replaced, in
the same run, alternating to share the load: the reference is the kink walk
(`realdata.attacks._walk`, one net pass per kink) and an ST trained per budget; ours is
the all-kinks line search (`_all_kinks`) and ST trained once for all budgets
(`simulate.training.TrainedRuns`).  The best of `--repeats` is kept and CPU seconds
are printed beside wall seconds, since wall time on a loaded machine overstates.

The extrapolation assumes every learning rate of every cell is ranked (3 evaluations per
cell, the chosen one reused), which is the worst case; `--jobs 2` divides it by at most 2.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import replace

import torch

import realdata.attacks as attacks
from realdata.data import load_dataset
from realdata.errors import run_main
from realdata.evaluate import evaluate
from realdata.models import build_model
from realdata.recipes import from_synthetic
from realdata.synthetic import LINEAR_EPS_GRIDS, LINEAR_PRESETS
from realdata.train import build_threat, fit

METHODS = ("st", "at", "coap")


@contextlib.contextmanager
def reference_line_search():
    """The line search as it was: the kink walk for every net."""
    fast = attacks._one_relu_layer
    attacks._one_relu_layer = lambda rest: False
    try:
        yield
    finally:
        attacks._one_relu_layer = fast


def _timed(job) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    job()
    return time.perf_counter() - wall, time.process_time() - cpu


def _best(job, repeats: int, reference: bool) -> tuple[float, float]:
    runs = []
    for _ in range(repeats):
        with reference_line_search() if reference else contextlib.nullcontext():
            runs.append(_timed(job))
    return min(runs)


def measure(n: int, epochs: int, eps: float, repeats: int) -> dict:
    """{(part, implementation): (wall s, cpu s)} for one epoch per method and one evaluation."""
    config = replace(LINEAR_PRESETS["paper"], n=n, eps=eps, epochs=epochs)
    dataset = load_dataset("linear", seed=0, **config.data_params())
    times = {}
    model = None
    # warm-up: the first fit imports the optimiser's compiler hooks (seconds), which is no step's cost
    small = replace(config, n=100, n_test=10, epochs=1)
    fit(from_synthetic(small), load_dataset("linear", seed=0, **small.data_params()),
        build_model("mlp", dataset, seed=0, width=config.width, depth=1), progress=False)
    for method in METHODS:
        base = from_synthetic(replace(config, method=method))
        threat = build_threat(base, dataset)

        def train(base=base, threat=threat):
            nonlocal model
            model = build_model(base.arch, dataset, seed=0, width=base.width, depth=base.depth)
            fit(base, dataset, model, threat=threat, progress=False)

        for reference in ((False, True) if method == "at" else (False,)):
            times[(method, reference)] = _best(train, repeats, reference)

    def evaluation():
        evaluate(model, dataset.x_test, dataset.y_test, threat, attack="line-search", bound="coap",
                 num_classes=2, signal=dataset.signal, box=None, batch_size=2000, progress=False)

    for reference in (False, True):
        times[("eval", reference)] = _best(evaluation, repeats, reference)
    return times


def extrapolate(times: dict, epochs: int, grid_eps: int, lrs: int, full_epochs: int, reference: bool) -> float:
    """CPU seconds of the whole grid from the measured parts."""
    per_epoch = {m: times[(m, reference and m == "at")][1] / epochs for m in METHODS}
    st_trainings = lrs * (grid_eps if reference else 1)
    trainings = st_trainings * per_epoch["st"] + grid_eps * lrs * (per_epoch["at"] + per_epoch["coap"])
    evaluations = len(METHODS) * grid_eps * lrs * times[("eval", reference)][1]
    return full_epochs * trainings + evaluations


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linear", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--n", type=int, default=10_000, help="training points (default 10000, the large-sample regime)")
    p.add_argument("--epochs", type=int, default=1, help="epochs timed per method (default 1)")
    p.add_argument("--eps", type=float, default=4.5, help="budget along e₁ (default 4.5)")
    p.add_argument("--repeats", type=int, default=2, help="timings per part; the best is kept (default 2)")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)  # as simulate.runner does during a run
    times = measure(args.n, args.epochs, args.eps, args.repeats)
    print(f"linear regime n={args.n}, d={LINEAR_PRESETS['paper'].d}, {LINEAR_PRESETS['paper'].n_test} test points; "
          f"load average {os.getloadavg()[0]:.1f}; best of {args.repeats}")
    print(f"{'part':24s} {'ours wall/cpu s':>16s} {'reference wall/cpu s':>21s} {'cpu ratio':>9s}")
    for part in METHODS + ("eval",):
        ours = times[(part, False)]
        ref = times.get((part, True))
        label = f"{part} ({args.epochs} epoch)" if part != "eval" else "evaluation (test set)"
        ref_text = f"{ref[0]:8.2f} / {ref[1]:7.2f}" if ref else f"{'(same)':>18s}"
        ratio = f"{ref[1] / ours[1]:9.1f}" if ref else f"{'':9s}"
        print(f"{label:24s} {ours[0]:7.2f} / {ours[1]:7.2f} {ref_text:>21s} {ratio}")
    config = LINEAR_PRESETS["paper"]
    grid = (len(LINEAR_EPS_GRIDS[10_000]), len(config.lrs), config.epochs)
    ours, ref = (extrapolate(times, args.epochs, *grid, reference=r) for r in (False, True))
    print(f"whole grid (6 ε × 3 methods × 3 lrs × {config.epochs} epochs), extrapolated CPU time: "
          f"ours {ours / 60:.1f} min, reference {ref / 60:.1f} min, ratio {ref / ours:.1f}x; "
          f"with --jobs 2 on 2 idle cores ours is at best {ours / 120:.1f} min wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
