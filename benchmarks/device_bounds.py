"""Bounds on a device against the same bounds on the CPU, for every bound method.

    python -m benchmarks.device_bounds [--device cuda] [--images 32] [--eps 36/255] [--tol 1e-5]

The paper's CIFAR-10 CNN (`cifar-cnn`, seeded initialisation) on the first ``--images`` test
images of the CIFAR-10 subset, ℓ2 threat.  Prints one line per method with the largest
absolute and relative difference of the margin lower bounds (relative to max(|bound|, 1)), and
exits 1 when any method's relative difference exceeds ``--tol``.  On a GPU this
checks that no bound runs in TF32 (`realdata.precision`): TF32 convolutions differ by ~1e-3.
"""
from __future__ import annotations

import sys

import torch

from realdata.bounds import BOUND_METHODS, margin_lower_bounds
from realdata.cli import Parser
from realdata.data import load_dataset
from realdata.distributed import resolve_device
from realdata.errors import UserError, parse_eps, run_main
from realdata.models import build_model
from realdata.threats import L2


def compare(device: torch.device, images: int, eps: float) -> dict:
    """{method: (max |Δ|, max |Δ|/max(|bound|, 1))} of device against CPU bounds."""
    data = load_dataset("cifar10", test_size=images, train_size=1, seed=0)
    model = build_model("cifar-cnn", data, seed=0).eval()
    x, y, threat = data.x_test, data.y_test, L2(eps)
    out = {}
    with torch.no_grad():
        for method in BOUND_METHODS:
            cpu = margin_lower_bounds(model, x, y, threat, method)
            dev = margin_lower_bounds(model.to(device), x.to(device), y.to(device), threat, method).cpu()
            model.cpu()
            diff = (dev - cpu).abs()
            out[method] = (float(diff.max()), float((diff / cpu.abs().clamp_min(1.0)).max()))
    return out


def main(argv=None) -> int:
    parser = Parser(prog="python -m benchmarks.device_bounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when visible)")
    parser.add_argument("--images", type=int, default=32, help="test images to bound (default 32)")
    parser.add_argument("--eps", type=parse_eps, default=36 / 255, help="ℓ2 radius (default 36/255)")
    parser.add_argument("--tol", type=float, default=1e-5, help="largest relative difference accepted (default 1e-5)")
    args = parser.parse_args(argv)
    if args.images < 1 or not args.tol > 0:
        raise UserError("--images must be positive and --tol a positive number.")
    device = resolve_device(args.device)
    worst = 0.0
    for method, (absolute, relative) in compare(device, args.images, args.eps).items():
        print(f"{method:<10} {device.type} vs cpu: max |diff| {absolute:.2e}, relative {relative:.2e}")
        worst = max(worst, relative)
    print(f"bounds on {device} {'equal' if worst <= args.tol else 'DIFFER FROM'} the CPU bounds to {args.tol:g} "
          f"(worst relative difference {worst:.2e}, {args.images} images)")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
