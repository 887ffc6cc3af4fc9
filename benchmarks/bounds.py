"""Speed and memory of the bounds engine against convex_adversarial, measured in one run.

    python -m benchmarks.bounds [--quick] [--repeats N] [--norm linf|l2]

For each network (an MLP, the small CIFAR CNN of Wong et al. and their ResNet on
32×32 inputs) it times forward + backward of the exact COAP robust loss — ours and
convex_adversarial's `robust_loss` — on the same network and batch, checks that
the two losses agree, and prints the time ratio and the peak memory of each.
Then the cost of `crown-ibp` and `crown` relative to `ibp`, and how often CROWN's
margin bound beats IBP's on random networks.

Each measurement runs in a fresh process so its peak resident memory can be read
alone: after a warm-up run the process resets the kernel's high-water mark
(/proc/self/clear_refs) and reports VmHWM minus its resident size at that point.
Everything runs on one thread (torch.set_num_threads(1)).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from types import SimpleNamespace

import torch

from realdata.bounds import margin_lower_bounds, robust_loss
from realdata.cli import Parser, parse_indices, positive_int
from realdata.errors import run_main
from realdata.models import build_model
from realdata.relaxation.reference import to_convex_adversarial
from realdata.threats import L2, Linf


def _vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])  # kB
    return 0


def _case(index: int, quick: bool):
    """(name, model, x, y) of benchmark case `index`, rebuilt identically in every process."""
    width = 0.125 if quick else 0.25
    batches = (8, 4, 1) if quick else (50, 16, 2)
    shape = (3, 32, 32)
    name, model = [
        ("mlp 3072-256-256-10", _network("mlp", shape, 256)),
        ("cifar-cnn", _network("cifar-cnn", shape)),
        (f"resnet width {width} 32x32", _network("resnet", shape, width)),
    ][index]
    g = torch.Generator().manual_seed(index)
    b = batches[index]
    return f"{name}, batch {b}", model, torch.rand((b,) + shape, generator=g), torch.randint(10, (b,), generator=g)


def _threat(norm: str):
    return Linf(2 / 255) if norm == "linf" else L2(36 / 255)


def _child(spec, queue):
    """Run one measurement in a fresh process: warm up, reset the memory high-water mark, time."""
    index, quick, norm, impl, repeats = spec
    torch.set_num_threads(1)
    _, model, x, y, = _case(index, quick)
    threat = _threat(norm)
    job = _reference(model, x, y, threat) if impl == "convex_adversarial" else _ours(model, x, y, threat, impl)
    job()  # first-call allocations and kernel selection
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _vm("VmRSS")
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = job()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    queue.put((min(times), (_vm("VmHWM") - before) / 1024, value, min(cpu)))


def measure(index, quick, norm, impl, repeats):
    """(best wall time in s, peak extra resident memory in MiB, loss, best CPU time in s) of one
    implementation on one case.  On a loaded machine the CPU time (user + system of the
    process, one thread) is the steadier measure; both are printed."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=((index, quick, norm, impl, repeats), queue))
    p.start()
    result = queue.get()
    p.join()
    return result


def _network(arch, shape, width=1.0):
    data = SimpleNamespace(input_shape=shape, num_classes=10, name="bench", mean=None, std=None)
    kwargs = {"width": width}
    if arch == "mlp":
        kwargs = {"width": int(width), "depth": 2}
    return build_model(arch, data, seed=0, **kwargs)


def _ours(model, x, y, threat, method="coap", **options):
    def job():
        model.zero_grad()
        loss, _ = robust_loss(model, x, y, threat, method, **options)
        loss.backward()
        return loss.item()
    return job


def _reference(model, x, y, threat):
    from convex_adversarial import robust_loss as ca_robust_loss

    norm_type = "l1" if isinstance(threat, Linf) else "l2"

    net = to_convex_adversarial(model)

    def job():
        model.zero_grad()
        loss, _ = ca_robust_loss(net, threat.eps, x, y, norm_type=norm_type)
        loss.backward()
        return loss.item()
    return job


def compare(index, quick, norm, repeats):
    name = _case(index, quick)[0]
    t_ours, m_ours, l_ours, c_ours = measure(index, quick, norm, "coap", repeats)
    t_ref, m_ref, l_ref, c_ref = measure(index, quick, norm, "convex_adversarial", repeats)
    agree = abs(l_ours - l_ref) <= 1e-4 * max(1.0, abs(l_ref))
    print(f"{name:34s} ours {t_ours:7.3f} s (cpu {c_ours:7.3f}) {m_ours:8.1f} MiB | convex_adversarial {t_ref:7.3f} s "
          f"(cpu {c_ref:7.3f}) {m_ref:8.1f} MiB | speed-up {t_ref / t_ours:5.2f}x wall, {c_ref / c_ours:5.2f}x cpu  "
          f"memory ratio {m_ours / max(m_ref, 1e-9):4.2f}"
          f"  losses {'agree' if agree else f'DIFFER ({l_ours:.6g} vs {l_ref:.6g})'}", flush=True)


def relative_costs(index, quick, norm, repeats):
    name = _case(index, quick)[0]
    t = {m: measure(index, quick, norm, m, repeats)[0] for m in ("ibp", "crown-ibp", "crown")}
    print(f"{name:34s} ibp {t['ibp']:.4f} s | crown-ibp {t['crown-ibp'] / t['ibp']:6.1f}x ibp | "
          f"crown {t['crown'] / t['ibp']:7.1f}x ibp", flush=True)


def crown_vs_ibp(nets: int, eps: float) -> float:
    """Fraction of (input, class) margin bounds where CROWN is tighter than IBP, on random nets."""
    wins = total = 0
    for seed in range(nets):
        g = torch.Generator().manual_seed(seed)
        model = _network("mlp", (20,), width=32)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) / max(1, p.shape[-1]) ** 0.5)
        x = torch.randn(16, 20, generator=g)
        y = torch.randint(10, (16,), generator=g)
        with torch.no_grad():
            crown = margin_lower_bounds(model, x, y, Linf(eps), "crown")
            ibp = margin_lower_bounds(model, x, y, Linf(eps), "ibp")
        off = torch.ones_like(crown, dtype=torch.bool).scatter_(1, y.unsqueeze(1), False)
        wins += (crown > ibp)[off].sum().item()
        total += off.sum().item()
    return wins / total


def main(argv=None):
    ap = Parser(prog="python -m benchmarks.bounds", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller batches and a narrower ResNet (seconds, not minutes)")
    ap.add_argument("--repeats", type=positive_int, default=2,
                    help="timed runs per measurement after a warm-up; the best is kept (default 2)")
    ap.add_argument("--norm", choices=("linf", "l2"), default="linf", help="threat model: linf 2/255 or l2 36/255 (default linf)")
    ap.add_argument("--cases", default="0,1,2", help="which networks: 0 mlp, 1 cifar-cnn, 2 resnet (default all)")
    args = ap.parse_args(argv)
    cases = parse_indices(args.cases, ("mlp", "cifar-cnn", "resnet"), "--cases")
    print(f"threat {_threat(args.norm)}, torch {torch.__version__}, 1 thread, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    print("exact COAP robust loss, forward + backward:", flush=True)
    for index in cases:
        compare(index, args.quick, args.norm, args.repeats)
    print("cost relative to ibp (robust loss, forward + backward):", flush=True)
    for index in [c for c in cases if c < 2]:  # CROWN on the ResNet takes minutes
        relative_costs(index, args.quick, args.norm, args.repeats)
    for eps in (0.01, 0.1, 0.5):
        share = crown_vs_ibp(10 if args.quick else 50, eps)
        print(f"crown's margin bound tighter than ibp's: {share:.1%} of (input, class) pairs "
              f"on random 20-32-32-10 MLPs, linf eps {eps}", flush=True)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
