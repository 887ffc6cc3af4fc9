"""Our bounds against auto_LiRPA's, method by method: agreement and time, in one run.

    python -m benchmarks.lirpa [--quick] [--repeats N] [--norm linf|l2] [--eps E] [--cases 0,1,2]
        [--iterations 20] [--lr 0.5] [--lirpa-source DIR]

auto_LiRPA (Zhang et al.; https://github.com/Verified-Intelligence/auto_LiRPA) is the
reference implementation of IBP, CROWN-IBP, CROWN and optimised CROWN (α-CROWN).  It
has no release that installs on torch 2.13, but its source runs on torch 2.13 CPU
once `packaging appdirs pyyaml graphviz tqdm` are installed: clone it and pass the
clone with ``--lirpa-source`` (or ``$AUTO_LIRPA_SOURCE``, or put it on PYTHONPATH).
Without it this benchmark says so and stops; nothing else in the toolkit needs it.

For every network (small MLPs, the small CIFAR CNN of Wong et al.) and every bound
method both libraries implement, the margin lower bounds f_y − f_j of one batch are
computed by each, the largest difference is reported relative to the bounds' scale
(max |bound|), and the best-of-N wall and CPU times of each give the speed ratios
(auto_LiRPA's time / ours; > 1 means ours is faster; on a loaded machine the CPU time
is the steadier).  Our time includes parsing the
model on every call; auto_LiRPA's `BoundedModule` is built once, outside the timing.
Optimised CROWN runs the same number of iterations and step size on both sides
(auto_LiRPA's defaults otherwise: Adam, step decay 0.98, keep the best iterate).
Everything runs on one thread.
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import time
from types import SimpleNamespace

import torch

from realdata.bounds import BOUND_METHODS, margin_lower_bounds
from realdata.cli import Parser, parse_indices, positive_int
from realdata.errors import UserError, parse_eps, parse_list, run_main
from realdata.models import build_model
from realdata.threats import L2, Linf

#: our method name → auto_LiRPA's `compute_bounds(method=...)`
LIRPA_METHODS = {"ibp": "IBP", "crown-ibp": "CROWN-IBP", "crown": "CROWN", "alpha-crown": "CROWN-Optimized"}
#: our options of the optimised method → auto_LiRPA's optimize_bound_args
_ALPHA_OPTIONS = {"iterations": "iteration", "step_size": "lr_alpha"}


def load_oracle(source: str | None):
    """(auto_LiRPA module, None) or (None, the reason it cannot be imported)."""
    if source:
        sys.path.insert(0, os.path.abspath(source))
    try:
        return importlib.import_module("auto_LiRPA"), None
    except Exception as err:  # noqa: BLE001 — any failure means "absent", and we say which
        return None, f"{type(err).__name__}: {err}"


def _network(arch: str, shape: tuple, seed: int, **params):
    data = SimpleNamespace(input_shape=shape, num_classes=10, name="bench", mean=None, std=None)
    return build_model(arch, data, seed=seed, **params).eval()


def cases(quick: bool) -> list:
    """(name, model, x, y) of each network; random weights from a fixed seed, inputs in [0, 1]."""
    specs = [
        ("mlp 20-32-32-10", "mlp", (20,), {"width": 32, "depth": 2}, 16),
        ("mlp 784-100-100-10", "mlp", (1, 28, 28), {"width": 100, "depth": 2}, 8 if quick else 32),
        ("cifar-cnn", "cifar-cnn", (3, 32, 32), {}, 2 if quick else 8),
    ]
    out = []
    for index, (name, arch, shape, params, batch) in enumerate(specs):
        g = torch.Generator().manual_seed(index)
        model = _network(arch, shape, index, **params)
        x, y = torch.rand((batch,) + shape, generator=g), torch.randint(10, (batch,), generator=g)
        out.append((f"{name}, batch {batch}", model, x, y))
    return out


def _margin_spec(y: torch.Tensor, classes: int) -> torch.Tensor:
    """auto_LiRPA's C matrix of the margins f_y − f_j, [B, classes, classes] (row y is zero)."""
    eye = torch.eye(classes)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def _best_time(job, repeats: int):
    """(best wall time, best CPU time of this process, the job's value) over `repeats` runs."""
    job()  # warm-up: first-call allocations, kernel choice
    times, cpu, value = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = job()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu), value


class Oracle:
    """auto_LiRPA's bounds of one model on one batch."""

    def __init__(self, lirpa, model, x, y, threat):
        self.lirpa = lirpa
        self.model = lirpa.BoundedModule(model, torch.zeros_like(x[:1]), device="cpu")
        norm = float("inf") if isinstance(threat, Linf) else 2.0
        self.input = lirpa.BoundedTensor(x, lirpa.PerturbationLpNorm(norm=norm, eps=threat.eps))
        self.spec = _margin_spec(y, 10)

    def bounds(self, method: str, **options) -> torch.Tensor:
        if options:
            self.model.set_bound_opts({"optimize_bound_args": {_ALPHA_OPTIONS[k]: v for k, v in options.items()}})
        lower, _ = self.model.compute_bounds(x=(self.input,), C=self.spec, method=LIRPA_METHODS[method],
                                             bound_upper=False)
        return lower.detach()


def compare(lirpa, name, model, x, y, threat, methods, repeats, alpha_options) -> list:
    oracle = Oracle(lirpa, model, x, y, threat)
    rows, crown = [], None
    for method in methods:
        options = alpha_options if method == "alpha-crown" else {}

        def ours():
            with torch.set_grad_enabled(method == "alpha-crown"):
                return margin_lower_bounds(model, x, y, threat, method, **options).detach()

        t_ours, c_ours, b_ours = _best_time(ours, repeats)
        t_ref, c_ref, b_ref = _best_time(lambda: oracle.bounds(method, **options), repeats)
        scale = b_ref.abs().max().item()
        gap = (b_ours - b_ref).abs().max().item() / max(scale, 1e-12)
        tighter = (b_ours - b_ref).mean().item()
        rows.append({"case": name, "method": method, "ours_s": t_ours, "lirpa_s": t_ref, "ratio": t_ref / t_ours,
                     "cpu_ratio": c_ref / c_ours, "max_rel_diff": gap, "mean_diff": tighter, "scale": scale})
        gain = ""
        if method == "crown":
            crown = (b_ours, b_ref)
        elif method == "alpha-crown" and crown is not None:
            # how far the optimisation moved each side from its own CROWN: the gap above is small
            # relative to this only if both really optimised
            gain = (f" | gain over crown: ours {(b_ours - crown[0]).mean().item():.2e}, "
                    f"theirs {(b_ref - crown[1]).mean().item():.2e}")
        print(f"{name:28s} {method:11s} ours {t_ours:8.4f} s (cpu {c_ours:8.4f}) | auto_LiRPA {t_ref:8.4f} s "
              f"(cpu {c_ref:8.4f}) | speed-up {t_ref / t_ours:6.2f}x wall, {c_ref / c_ours:6.2f}x cpu | "
              f"max |diff| {gap:.1e} of scale {scale:.3g} | mean ours − theirs "
              f"{tighter:+.2e}{gain}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = Parser(prog="python -m benchmarks.lirpa", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches (seconds, not minutes)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per measurement after a warm-up; the best is kept (default 3)")
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf", help="threat model (default linf)")
    parser.add_argument("--eps", default=None, help="budget in input space (default 2/255 for linf, 36/255 for l2)")
    parser.add_argument("--cases", default="0,1,2", help="networks: 0 mlp 20-32-32-10, 1 mlp 784-100-100-10, 2 cifar-cnn (default all)")
    parser.add_argument("--methods", default=",".join(m for m in LIRPA_METHODS if m in BOUND_METHODS),
                        help="bound methods to compare (default: every method both libraries have)")
    parser.add_argument("--iterations", type=positive_int, default=20, help="optimised CROWN: iterations on both sides (default 20)")
    parser.add_argument("--lr", type=float, default=0.5, help="optimised CROWN: Adam step size on both sides (default 0.5)")
    parser.add_argument("--lirpa-source", default=os.environ.get("AUTO_LIRPA_SOURCE"),
                        help="folder holding auto_LiRPA's source (the clone's root); default $AUTO_LIRPA_SOURCE or PYTHONPATH")
    args = parser.parse_args(argv)
    methods = parse_list(args.methods, str)
    for m in methods:
        if m not in LIRPA_METHODS or m not in BOUND_METHODS:
            raise UserError(f"--methods: {m!r} is not a method both libraries have; choose from "
                            f"{', '.join(m for m in LIRPA_METHODS if m in BOUND_METHODS)}.")
    if not 0 < args.lr < math.inf:
        raise UserError(f"--lr must be a positive finite number, got {args.lr}.")
    networks = cases(args.quick)
    chosen = parse_indices(args.cases, [name for name, *_ in networks], "--cases")
    eps = parse_eps(args.eps) if args.eps is not None else (2 / 255 if args.norm == "linf" else 36 / 255)
    lirpa, reason = load_oracle(args.lirpa_source)
    if lirpa is None:
        print(f"auto_LiRPA cannot be imported ({reason}), so there is nothing to compare against. Clone "
              "https://github.com/Verified-Intelligence/auto_LiRPA, install packaging appdirs pyyaml graphviz "
              "tqdm, and pass the clone with --lirpa-source.", flush=True)
        return 0
    torch.set_num_threads(1)
    threat = Linf(eps) if args.norm == "linf" else L2(eps)
    alpha_options = {"iterations": args.iterations, "step_size": args.lr}
    print(f"threat {threat}, torch {torch.__version__}, auto_LiRPA {getattr(lirpa, '__version__', '?')}, "
          f"1 thread, best of {args.repeats}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
          flush=True)
    for index in chosen:
        name, model, x, y = networks[index]
        compare(lirpa, name, model, x, y, threat, methods, args.repeats, alpha_options)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
