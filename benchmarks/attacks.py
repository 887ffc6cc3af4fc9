"""Speed of our Auto-PGD against pyautoattack's APGDAttack, measured in one run.

    python -m benchmarks.attacks [--arch cifar-cnn] [--norm linf|l2] [--steps 100] [--restarts 1]
                                 [--batch 128] [--repeats 3] [--loss ce|dlr]

Both attack the same network (built by `realdata.models.build_model` for 3×32×32
inputs, seeded, untrained) on the same random batch with the same iterations,
restarts and loss.
The labels are the network's own predictions, so both implementations attack
every point (pyautoattack skips points that are misclassified to begin with).
Runs alternate between the two to share the machine's load fairly; the best of
`--repeats` is kept.  Prints both times, both robust accuracies and the ratio
reference / ours (≥ 1.0: ours is no slower).
"""
from __future__ import annotations

import argparse
import time
import warnings
from types import SimpleNamespace

import torch

from realdata.attacks import apgd
from realdata.cli import Parser, positive_int
from realdata.errors import run_main
from realdata.models import ARCHS, build_model
from realdata.threats import make_threat

_AA_NORMS = {"linf": "Linf", "l2": "L2"}


def _timed(job):
    start = time.perf_counter()
    out = job()
    return time.perf_counter() - start, out


def main(argv=None):
    parser = Parser(prog="python -m benchmarks.attacks", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="cifar-cnn", choices=[a for a in ARCHS if a != "mlp"],
                        help="network for 3×32×32 inputs (default: cifar-cnn, the small CNN of Wong et al.)")
    parser.add_argument("--norm", default="linf", choices=sorted(_AA_NORMS), help="threat model (default: linf)")
    parser.add_argument("--eps", type=float, default=None,
                        help="budget (default: 1/255 for linf, 0.1 for l2 — small, because the network is untrained "
                             "and larger budgets break every point, which would leave restarts nothing to do)")
    parser.add_argument("--steps", type=positive_int, default=100, help="iterations per restart (default: 100)")
    parser.add_argument("--restarts", type=positive_int, default=1, help="restarts (default: 1)")
    parser.add_argument("--loss", default="ce", choices=["ce", "dlr"], help="attack loss (default: ce)")
    parser.add_argument("--batch", type=positive_int, default=128, help="points attacked at once (default: 128)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each; the best counts (default: 3)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args(argv)

    from pyautoattack.autopgd_base import APGDAttack

    torch.set_num_threads(args.threads)
    eps = args.eps if args.eps is not None else (1 / 255 if args.norm == "linf" else 0.1)
    threat = make_threat(args.norm, eps)
    data = SimpleNamespace(name="bench", input_shape=(3, 32, 32), num_classes=10, mean=None, std=None)
    model = build_model(args.arch, data, seed=0).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)

    def ours():
        return apgd(model, x, y, threat, steps=args.steps, restarts=args.restarts, loss=args.loss, box=(0, 1),
                    generator=torch.Generator().manual_seed(0))

    def reference():
        attack = APGDAttack(model, n_iter=args.steps, norm=_AA_NORMS[args.norm], n_restarts=args.restarts, eps=eps,
                            seed=0, loss=args.loss, device="cpu")
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return attack.perturb(x, y)

    ours(), reference()  # warm-up: allocator and kernel selection
    t_ours, t_ref = [], []
    for _ in range(args.repeats):
        t, x_ours = _timed(ours)
        t_ours.append(t)
        t, x_ref = _timed(reference)
        t_ref.append(t)
    with torch.no_grad():
        acc_ours = (model(x_ours).argmax(1) == y).double().mean().item()
        acc_ref = (model(x_ref).argmax(1) == y).double().mean().item()
    best_ours, best_ref = min(t_ours), min(t_ref)
    print(f"{args.arch} {threat} APGD-{args.loss.upper()} {args.steps} steps x {args.restarts} restart(s), "
          f"batch {args.batch}, {torch.get_num_threads()} thread(s)")
    print(f"  ours         {best_ours:8.3f} s   robust accuracy {acc_ours:.3f}")
    print(f"  pyautoattack {best_ref:8.3f} s   robust accuracy {acc_ref:.3f}")
    print(f"  ratio pyautoattack / ours = {best_ref / best_ours:.2f} (target >= 1.0)")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
