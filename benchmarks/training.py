"""Speed of one COAP training epoch: this toolkit against convex_adversarial, in one run.

    python -m benchmarks.training [--dataset cifar10] [--arch cifar-cnn] [--images 500]
        [--batch-size 50] [--eps 36/255] [--proj 50|none] [--repeats 3] [--threads N] [--device cpu] [--json]

Both sides train the same network (same initial weights, no normalisation layer, which
convex_adversarial cannot bound) on the same batches with the same optimiser for one
epoch of ``--images`` images at a constant ℓ2 budget:

* ours: `realdata.train.fit` with method ``coap`` (random projections or exact bounds);
* reference: a loop of `convex_adversarial.robust_loss` (Wong et al.'s code;
  ``norm_type='l2_normal'`` with projections, ``'l2'`` exact) + backward + step.

The result is images per second for each and their ratio (ours / reference); > 1 means
this toolkit is faster.  Timing runs in one process on one machine, so the ratio is
meaningful even where absolute speeds are not; the ratio of CPU times (user + system of
the process) is printed too.  The two sides alternate, each epoch from the same initial
weights, and each side's fastest of ``--repeats`` epochs counts: on a shared machine one
epoch each, run one after the other, gave ratios from 0.96x to 1.47x within minutes.  The
ratio of each repeat's pair is printed too (lowest and highest), so a reader sees how far
one measurement can be trusted; ``--threads 1`` keeps the two threads of a 2-core machine
from competing with anything else on it.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time

import torch
from torch import nn

from realdata.cli import Parser, positive_int
from realdata.data import load_dataset
from realdata.errors import UserError, parse_eps, run_main
from realdata.layers import Normalize
from realdata.models import ARCHS, build_model
from realdata.recipes import make_config
from realdata.threats import L2
from realdata.train import build_optimizer, fit, stream_seed


def _plain_model(arch: str, dataset, seed: int, width) -> nn.Sequential:
    """The architecture without its Normalize layer (convex_adversarial knows only
    Linear/Conv2d/ReLU/Flatten); both sides then bound exactly the same function."""
    params = {} if width is None else {"width": width}
    model = build_model(arch, dataset, seed=seed, **params)
    return nn.Sequential(*[m for m in model if not isinstance(m, Normalize)])


def _reference_epoch(model, config, x, y, eps: float, proj) -> tuple:
    """One epoch with convex_adversarial.robust_loss; returns (wall, CPU) seconds."""
    from convex_adversarial import robust_loss

    opt, _ = build_optimizer(config, model)
    options = {"proj": proj, "norm_type": "l2_normal"} if proj else {"norm_type": "l2"}
    began, began_cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(y), config.batch_size):
        xb, yb = x[start:start + config.batch_size], y[start:start + config.batch_size]
        loss, _ = robust_loss(model, eps, xb, yb, **options)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - began, time.process_time() - began_cpu


def measure(dataset_name="cifar10", arch="cifar-cnn", width=None, images=500, batch_size=50, eps=36 / 255,
            proj=50, device="cpu", seed=0, data_dir=None, repeats=3) -> dict:
    """One measurement (see the module docstring) → its numbers as a dict; runs on torch's
    current number of threads."""
    if images < batch_size:
        raise UserError(f"--images ({images}) must be at least one batch ({batch_size}).")
    if repeats < 1:
        raise UserError(f"--repeats must be a positive integer, got {repeats}.")
    data = load_dataset(dataset_name, data_dir=data_dir, train_size=images, test_size=1, seed=seed)
    data.augment = False  # identical batches on both sides
    config = make_config(dataset_name, "coap", eps=eps, epochs=1, batch_size=batch_size, proj=proj,
                         ramp_epochs=0.0, eps_start=0.0, optimizer="adam", lr=1e-3, augment=False, seed=seed)
    dev = torch.device(device)
    ours_model = _plain_model(arch, data, seed, width).to(dev)
    ref_model = copy.deepcopy(ours_model)

    # the reference sees the batches in the order fit draws them
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(stream_seed(seed, "batches")))
    x, y = data.x_train[order].to(dev), data.y_train[order].to(dev)

    # warm-up on throwaway copies: one-time costs (lazy imports such as the optimiser's
    # torch._dynamo, allocator growth) must not be charged to whichever side runs first
    warm = copy.deepcopy(data)
    warm.x_train, warm.y_train = data.x_train[:batch_size], data.y_train[:batch_size]
    fit(config, warm, copy.deepcopy(ours_model), threat=L2(eps), device=device, progress=False)
    _reference_epoch(copy.deepcopy(ref_model), config, x[:batch_size], y[:batch_size], eps, proj)

    runs = []
    for _ in range(repeats):  # alternating, each from the initial weights: load spikes hit both sides alike
        began, began_cpu = time.perf_counter(), time.process_time()
        fit(config, data, copy.deepcopy(ours_model), threat=L2(eps), device=device, progress=False)
        ours = (time.perf_counter() - began, time.process_time() - began_cpu)
        runs.append((ours, _reference_epoch(copy.deepcopy(ref_model), config, x, y, eps, proj)))
    ours, ours_cpu = min(r[0][0] for r in runs), min(r[0][1] for r in runs)
    reference, reference_cpu = min(r[1][0] for r in runs), min(r[1][1] for r in runs)
    pairs = [r[1][0] / r[0][0] for r in runs]  # each repeat's wall ratio: the spread of one measurement
    return {"dataset": dataset_name, "arch": arch, "width": width, "images": images, "batch_size": batch_size,
            "eps": eps, "proj": proj, "repeats": repeats, "device": str(dev), "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0], "cores": os.cpu_count(),
            "ours_images_per_s": images / ours, "reference_images_per_s": images / reference,
            "ratio": reference / ours, "ratio_per_repeat": pairs, "ours_s": ours, "reference_s": reference,
            "ours_cpu_s": ours_cpu, "reference_cpu_s": reference_cpu, "cpu_ratio": reference_cpu / ours_cpu}


def _checked(args) -> tuple:
    """(projections or None, ε) from the flags, before any work (the counts are `positive_int`)."""
    eps = parse_eps(args.eps)
    if args.proj.lower() == "none":
        return None, eps
    if not args.proj.isdigit() or int(args.proj) < 1:
        raise UserError(f"--proj takes a positive number of projections or 'none', got {args.proj!r}.")
    return int(args.proj), eps


def main(argv=None) -> int:
    parser = Parser(prog="python -m benchmarks.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10", help="cifar10 (the shared subset by default), mnist, fashion-mnist, digits")
    parser.add_argument("--data-dir", default=None, help="dataset folder (see python -m realdata.train --help)")
    parser.add_argument("--arch", default="cifar-cnn", help=f"architecture ({', '.join(ARCHS)})")
    parser.add_argument("--width", type=float, default=None, help="width factor of the architecture")
    parser.add_argument("--images", type=positive_int, default=500, help="images in the epoch (default 500)")
    parser.add_argument("--batch-size", type=positive_int, default=50, help="batch size (default 50, the COAP recipe's)")
    parser.add_argument("--eps", default="36/255", help="ℓ2 budget in pixel space (default 36/255)")
    parser.add_argument("--proj", default="50", help="random projections, or 'none' for exact bounds (default 50)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="epochs per side, alternating; each side's fastest counts (default 3)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=f"torch threads for both sides (default: torch's, {torch.get_num_threads()} here)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset, weights and batch order")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    proj, eps = _checked(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = measure(args.dataset, args.arch, args.width, args.images, args.batch_size, eps, proj,
                     args.device, args.seed, args.data_dir, args.repeats)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        mode = f"{proj} projections" if proj else "exact bounds"
        print(f"COAP training, {args.arch} on {args.images} {args.dataset} images, batch {args.batch_size}, "
              f"{mode}, {result['device']} ({result['threads']} threads), best of {args.repeats}: "
              f"ours {result['ours_images_per_s']:.1f} img/s, "
              f"convex_adversarial {result['reference_images_per_s']:.1f} img/s, ratio {result['ratio']:.2f}x wall, "
              f"{result['cpu_ratio']:.2f}x cpu; one repeat's pair {min(result['ratio_per_repeat']):.2f}x to "
              f"{max(result['ratio_per_repeat']):.2f}x (load average {result['load_average']:.2f} on "
              f"{result['cores']} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
