"""Train one network with one method, evaluate it, and write its result record.

Library (what `realdata.sweep`, `simulate` and `figures` call)::

    config = make_config("cifar10", "coap", recipe="quick", eps=36/255, seed=0)
    record = train(config, out="results")                   # load, fit, evaluate, write
    result = fit(config, dataset, model, threat=threat,     # the training loop alone
                 callback=lambda epoch, model, entry: {...})

Command line::

    python -m realdata.train --dataset cifar10 --method coap --norm l2 --eps 36/255 \\
        [--recipe quick|paper] [--device cpu|cuda] [--seed 0] [--out results] [--json]
    torchrun --nproc_per_node 4 -m realdata.train ...    # the same run, data-parallel

A finished record is never recomputed without ``--force``; an unfinished run resumes
from its per-epoch checkpoint (``<out>/<name>-<hash>.ckpt``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from realdata import distributed
from realdata.attacks import attack_options, check_attack_input
from realdata.checkpoint import load_checkpoint, other_device_message, restore_rng, rng_state, save_checkpoint
from realdata.cli import (Parser, add_config_arguments, add_run_arguments, check_run_options, config_overrides,
                          recipe_epilog)
from realdata.data import DATASETS, augment_batch, load_dataset
from realdata.errors import UserError, run_main
from realdata.health import DivergenceMonitor, warn_diverged
from realdata.methods import CERTIFIED_METHODS, INITS, TRAIN_METHODS, LossOptions, check_model, training_loss
from realdata.models import build_model
from realdata.recipes import INFERRED, TrainConfig, make_config
from realdata.locks import acquire, lock_path, release
from realdata.results import config_hash, existing_record, make_record, record_path, write_record
from realdata.streams import generator, stream_seed
from realdata.threats import Threat, basis_direction, make_threat, random_directions
from realdata.validate import check_out_dir

#: callback(epoch, model, entry) -> dict | None, called after every epoch on every process;
#: `epoch` counts finished epochs (1 = after the first), `entry` is that epoch's history row
#: (loss, train_error, eps, beta, kappa, lr, time_s) and the returned dict is merged into it
#: (e.g. {"alignment": ..., "robust_error": ...}), so it lands in the checkpoint and the record.
Callback = Callable[[int, nn.Module, dict], "dict | None"]


@dataclass
class FitResult:
    model: nn.Module
    history: list = field(default_factory=list)
    train_time_s: float = 0.0
    completed: bool = True          # False when `stop_after` ended the call early
    resumed_from: int | None = None  # epoch the run resumed after, if it did
    divergence: str | None = None   # why training stopped early (realdata.health), None if it did not


# --------------------------------------------------------------------------- building blocks

def build_threat(config: TrainConfig, dataset) -> Threat:
    """The run's threat at its full budget.  'directions' on the linear distribution are
    the first k coordinates (e₁ carries the signal, docs/PAPER.md §2); elsewhere k random
    orthonormal directions drawn from the seed (the 2023 signal-aligned set)."""
    directions = None
    if config.norm == "directions":
        if dataset.name == "linear":
            directions = torch.cat([basis_direction(i, dataset.input_shape) for i in range(config.k)])
        else:
            directions = random_directions(config.k, dataset.input_shape, seed=config.seed)
    return make_threat(config.norm, config.eps, directions)


def build_optimizer(config: TrainConfig, model: nn.Module):
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config.lr_milestones), gamma=config.lr_gamma)
    return opt, sched


def _generators(config: TrainConfig, device: torch.device) -> dict[str, torch.Generator]:
    """The streams whose state a checkpoint carries: `data` (CPU) orders the batches and
    `augment` (on the device) crops and flips them, identically on every process."""
    return {"data": generator(config.seed, "batches"), "augment": generator(config.seed, "augment", device)}


def noise_stream(config: TrainConfig, epoch: int, ctx: distributed.Context) -> torch.Generator:
    """Attacks' random starts and the bounds' random projections: one stream per process and
    epoch (each process draws for its own share, so a shared stream would drift apart between
    processes), reseeded from (seed, rank, epoch) so a resume or another process count needs
    no per-process state.  One process draws the stream the single-process run draws."""
    name = "train-noise" if ctx.world_size == 1 else f"train-noise:rank{ctx.rank}"
    return generator(config.seed, f"{name}:epoch{epoch}", ctx.device)


def clean_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> float:
    """Clean error of `model` on (x, y), in eval mode, in chunks (the training set can be large)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        wrong = sum(int((model(x[i:i + chunk]).argmax(1) != y[i:i + chunk]).sum()) for i in range(0, len(y), chunk))
    model.train(was_training)
    return wrong / max(len(y), 1)


def method_options(config: TrainConfig) -> dict:
    """The configuration's fields that shape a method's loss: those `realdata.methods.LossOptions`
    and `TrainConfig` share (attack, attack_steps, ibp_coef, sabr_lambda, taps_split, l1, ...)."""
    names = {f.name for f in dataclasses.fields(LossOptions)} & {f.name for f in dataclasses.fields(config)}
    return {name: getattr(config, name) for name in sorted(names)}


def _plain(value):
    """Callback values as plain Python numbers and lists: the checkpoint is loaded with
    weights_only (no arbitrary pickles), which refuses numpy scalars and arrays."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy and torch, scalars and arrays
        return value.tolist()
    return value


# --------------------------------------------------------------------------- the training loop

def fit(config: TrainConfig, dataset, model: nn.Module, *, threat: Threat | None = None,
        callback: Callback | None = None, checkpoint=None, device=None, progress: bool = True,
        stop_after: int | None = None, context: distributed.Context | None = None) -> FitResult:
    """Train `model` on `dataset.x_train/y_train` with `config`'s method, optimiser and schedules.

    threat      the full-budget threat (default: `build_threat(config, dataset)`); pass a
                `Directions` threat for signal-aligned training.  The schedule ramps its ε.
    callback    see `Callback`; runs after every epoch (e.g. alignment, robust error).
    checkpoint  a path: resume from it if it exists, rewrite it after every epoch.
    device      where to train (default: where the model's parameters are).
    stop_after  train at most this many epochs in this call (then `completed` is False).
    Under torchrun (or with `context`), each process trains on its share of every batch.
    """
    # a library caller's model stays where it is unless a device is asked for
    ctx = context or distributed.setup(device if device is not None else str(next(model.parameters()).device))
    dev = ctx.device
    model.to(dev)
    threat = (threat if threat is not None else build_threat(config, dataset)).to(dev)
    x_train, y_train = dataset.x_train.to(dev), dataset.y_train.to(dev)
    if len(y_train) == 0:
        raise UserError("the training set is empty; check train_size.")
    check_attack_input(model, x_train, y_train, threat, dataset.box)  # once per run, not per attack
    options = method_options(config)  # once, not per step (it reads two dataclasses' fields)
    check_model(config.method, model, **options)  # e.g. a TAPS split the model lacks
    opt, sched = build_optimizer(config, model)
    gens = _generators(config, dev)
    schedule = config.schedule
    history, start, spent, resumed = [], 0, 0.0, None
    hash_ = config_hash(config, dev.type)

    # rank 0 reads the checkpoint and hands it to all: without a shared folder the others may see none
    state = ctx.decide(lambda: load_checkpoint(checkpoint, hash_, dev.type)) if checkpoint is not None else None
    if state is None and INITS[config.init] is not None:
        # a fresh run starts from the method's initialisation (a resumed one loads its weights)
        INITS[config.init](model, torch.Generator(device=dev).manual_seed(stream_seed(config.seed, "init")))
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise UserError(f"the checkpoint {checkpoint} does not fit this model ({err}); delete it to start over.") from None
        sched.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], gens, dev, checkpoint)
        history, start, spent, resumed = list(state["history"]), int(state["epoch"]), float(state["train_time_s"]), int(state["epoch"])

    n, bs = len(y_train), config.batch_size
    batches = math.ceil(n / bs)
    params = [p for p in model.parameters() if p.requires_grad]
    use_augment = config.augment and getattr(dataset, "augment", False)
    end = config.epochs if stop_after is None else min(config.epochs, start + stop_after)
    bar = tqdm(total=(end - start) * batches, disable=not (progress and ctx.is_main), leave=False,
               desc=f"{config.method} {dataset.name}", unit="batch", file=sys.stderr)
    monitor = DivergenceMonitor(dataset.num_classes, config.epochs, config.warmup_epochs, config.ramp_epochs, history)
    began = time.perf_counter()
    for epoch in range(start, end):
        model.train()
        order = torch.randperm(n, generator=gens["data"]).to(dev)
        lr = opt.param_groups[0]["lr"]
        noise = noise_stream(config, epoch, ctx)
        # per-epoch sums on the device (loss·count, error·count): read once, at the epoch's end
        totals, count = torch.zeros(2, dtype=torch.float64, device=dev), 0
        for i in range(batches):
            idx = order[i * bs:(i + 1) * bs]
            x, y = x_train[idx], y_train[idx]
            if use_augment:
                x = augment_batch(x, gens["augment"])  # whole batch on every process: shares stay consistent
            part = distributed.shard(len(y), ctx)
            xs, ys = x[part], y[part]
            step = schedule.at(epoch + i / batches, threat.eps)
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=dev)
            if len(ys):
                loss, err = training_loss(config.method, model, xs, ys, threat.with_eps(step.eps), beta=step.beta,
                                          kappa=step.kappa, full_eps=threat.eps, box=dataset.box,
                                          generator=noise, checked=True, **options)
                opt.zero_grad(set_to_none=True)  # an attack may have left gradients behind
                # weight by the share's fraction so summed gradients are the whole batch's mean;
                # a non-finite loss's gradients are never applied (checked below, before the step)
                (loss * (len(ys) / len(y))).backward()
                totals += torch.stack([loss.detach().double(), err.double()]) * len(ys)
                count += len(ys)
            # "any process's loss not finite" rides in the gradient all-reduce
            bad = distributed.sum_gradients(params, ctx, (~torch.isfinite(loss.detach())).to(loss.dtype))
            # the step's one host sync: this process's loss (progress bar, divergence) and the flag
            loss_value, bad_anywhere = torch.stack([loss.detach(), bad.to(loss.dtype)]).tolist()
            if len(ys):
                monitor.batch_loss(loss_value, epoch + 1)
            if monitor.reason is None and bad_anywhere:
                monitor.reason = f"non-finite loss on another process in epoch {epoch + 1}"
            if monitor.reason:
                break  # before the step: the weights stay those of the last finite loss
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            opt.step()
            bar.update(1)
            # refresh=False: the bar redraws at its own pace (update above), not on every step (~40 µs
            # and a line of output per step: 720 000 of them in the n = 10⁴ linear grid)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}" if len(ys) else "-", eps=f"{step.eps:.3g}",
                            refresh=False)
        if monitor.reason:
            break
        sched.step()
        loss_sum, err_sum, count = distributed.sum_scalars(torch.cat([totals, totals.new_tensor([count])]), ctx)
        entry = {"epoch": epoch + 1, "loss": loss_sum / count, "train_error": err_sum / count, "eps": step.eps,
                 "lr": lr, "time_s": spent + time.perf_counter() - began}
        if config.method in CERTIFIED_METHODS:
            entry.update(beta=step.beta if config.method == "crown-ibp" else 0.0, kappa=step.kappa)
        if epoch + 1 in (monitor.check_at, config.epochs):
            # the objective's error is robust or certified; chance is judged on clean inputs
            entry["clean_train_error"] = clean_error(model, x_train, y_train)
        if callback is not None:
            entry.update(_plain(callback(epoch + 1, model, entry) or {}))
        history.append(entry)
        monitor.epoch(entry)
        if checkpoint is not None and ctx.is_main:
            save_checkpoint(checkpoint, {
                "config_hash": hash_, "device_type": dev.type, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state(gens, dev),
                "history": history, "train_time_s": spent + time.perf_counter() - began})
        ctx.barrier()
        if monitor.reason:
            break
    bar.close()
    if monitor.reason and ctx.is_main:
        warn_diverged(f"{config.method} on {dataset.name} at lr={config.lr:g} (seed {config.seed})", monitor.reason)
    return FitResult(model=model, history=history, train_time_s=spent + time.perf_counter() - began,
                     completed=end >= config.epochs or monitor.reason is not None, resumed_from=resumed,
                     divergence=monitor.reason)


# --------------------------------------------------------------------------- a whole run

def evaluate_model(config: TrainConfig, dataset, model: nn.Module, threat: Threat, device, progress: bool = True,
                   context: distributed.Context | None = None) -> dict:
    """realdata.evaluate on the test set with the configuration's attack and bound; under
    torchrun every process evaluates its share of each round and all get the whole result."""
    from realdata.evaluate import TIGHTEST_BOUNDS, evaluate

    # streams of their own (one per batch, see evaluate): the evaluation's random starts
    # depend neither on how training went nor on the number of processes
    options = attack_options(config.eval_attack, steps=config.eval_steps, restarts=config.eval_restarts,
                             seed=config.seed)
    if "generator" in attack_options(config.eval_attack, generator=None):  # the attack draws random starts
        options["attack_seed"] = stream_seed(config.seed, "evaluation")
    model.eval()
    return evaluate(model, dataset.x_test, dataset.y_test, threat, attack=config.eval_attack,
                    bound=None if config.eval_bound == "none" else config.eval_bound,
                    bound_options={"iterations": config.alpha_iterations, "step_size": config.alpha_step_size},
                    num_classes=dataset.num_classes, signal=dataset.signal if dataset.signal_fn else None,
                    box=dataset.box, device=device, progress=progress, context=context,
                    also_bounds=TIGHTEST_BOUNDS if config.eval_tightest else (), **options)


def diverged_metrics(config: TrainConfig, model: nn.Module, dataset, device) -> dict:
    """A diverged model's metrics: its clean test error only.  Attacks and bounds on weights that
    blew up give overflow, not information, so robust and certified errors are None."""
    return {"n": len(dataset.y_test), "standard_error": clean_error(model, dataset.x_test.to(device),
                                                                     dataset.y_test.to(device)),
            "robust_error": None, "attack": config.eval_attack, "certified_error": None,
            "bound": None if config.eval_bound == "none" else config.eval_bound}


def paths(config: TrainConfig, out, device=None) -> tuple[Path, Path]:
    """(record, checkpoint) paths of a run on `device` (default: a GPU if there is one); the
    device type is part of the hash, so CPU and GPU runs never share a record or checkpoint."""
    record = record_path(out, config.name, config, distributed.device_type(device))
    return record, record.with_suffix(".ckpt")


def _decide_start(config: TrainConfig, out, device_type: str, force: bool) -> dict | None:
    """Rank 0's view of a run: its finished record (skip), else None (resume or start; fit
    reads the checkpoint).  A checkpoint of this run left by another device type stops it
    with one sentence instead of being ignored."""
    record_file, _ = paths(config, out, device_type)
    done = existing_record(record_file, force)
    if done is None:
        for other in distributed.DEVICE_TYPES:
            ckpt = paths(config, out, other)[1]
            if other != device_type and ckpt.exists():
                raise UserError(other_device_message(ckpt, other, device_type))
        acquire(record_file)  # a second identical run stops here, naming this one (released by train)
        done = existing_record(record_file, force)  # finished while we looked?
        if done is not None:
            release(lock_path(record_file))
    return done


def load_run_data(config: TrainConfig, data_dir, ctx: distributed.Context):
    """The run's dataset; with a download asked for, rank 0 fetches, checks and unpacks it
    while the others wait, then they read the files it left."""
    def load():
        return load_dataset(config.dataset, data_dir=data_dir, train_size=config.train_size,
                            test_size=config.test_size, seed=config.seed, **config.data_params)
    return ctx.main_first(load) if config.data_params.get("download") else load()


def train(config: TrainConfig, *, out="results", data_dir=None, device=None, force: bool = False,
          progress: bool = True, stop_after: int | None = None, callback: Callback | None = None) -> dict | None:
    """Load the data, build the model, fit, evaluate and write the record → the record.

    Returns the existing record untouched when one is there (unless `force`), and None
    when `stop_after` ended the call before the last epoch (the checkpoint is kept: the
    same call resumes) and on every torchrun process but the first.
    """
    check_out_dir(out)
    ctx = distributed.setup(device)
    record_file, ckpt_file = paths(config, out, ctx.device)
    try:
        # rank 0 decides skip / resume / start for all (a corrupt record stops them all alike)
        done = ctx.decide(lambda: _decide_start(config, out, ctx.device.type, force))
        if done is not None:
            return done if ctx.is_main else None
        dataset = load_run_data(config, data_dir, ctx)
        arch_params = {k: v for k, v in (("width", config.width), ("depth", config.depth)) if v is not None}
        if config.arch == "mlp" and config.width is not None:
            arch_params["width"] = int(config.width)  # hidden units; a factor for the CNNs
        model = build_model(config.arch, dataset, seed=config.seed, **arch_params)
        threat = build_threat(config, dataset)
        torch.manual_seed(config.seed)  # global RNG (random projections of the bounds) from the seed too
        result = fit(config, dataset, model, threat=threat, callback=callback, checkpoint=ckpt_file,
                     progress=progress, stop_after=stop_after, context=ctx)
        if not result.completed:
            return None
        eval_began = time.perf_counter()
        if result.divergence is None:  # every process evaluates its share; all get the whole result
            metrics = evaluate_model(config, dataset, result.model, threat, ctx.device, progress and ctx.is_main, ctx)
        else:
            metrics = diverged_metrics(config, result.model, dataset, ctx.device)
        if not ctx.is_main:
            ctx.barrier()  # until rank 0 has written the record
            return None
        metrics["train_error"] = clean_error(result.model, dataset.x_train.to(ctx.device), dataset.y_train.to(ctx.device))
        eval_time = time.perf_counter() - eval_began
        record = make_record(
            "train", config.name, config, config.seed, metrics, result.history, device_type=ctx.device.type,
            diverged=result.divergence is not None, divergence=result.divergence, num_classes=dataset.num_classes,
            wall_time_s=result.train_time_s + eval_time, train_time_s=result.train_time_s, eval_time_s=eval_time,
            world_size=ctx.world_size, device=str(ctx.device), resumed_from=result.resumed_from,
            data=dataset.params, inferred=sorted(INFERRED.get((config.recipe, config.dataset, config.method), ())))
        write_record(record_file, record)
        ckpt_file.unlink(missing_ok=True)  # the record now carries everything the checkpoint did
        ctx.barrier()
        return record
    finally:
        if ctx.is_main:
            release(lock_path(record_file))
        ctx.close()


# --------------------------------------------------------------------------- command line

def summary_line(record: dict) -> str:
    c, m = record["config"], record["metrics"]

    def pct(key):
        value = m.get(key)
        return "n/a" if value is None else f"{100 * value:.1f}%"

    return (f"{c['dataset']} {c['method']} {c['norm']} eps={c['eps']:.4g} seed={c['seed']}: "
            f"standard error {pct('standard_error')}, robust error {pct('robust_error')} ({m.get('attack')}), "
            f"certified error {pct('certified_error')} ({m.get('bound')}"
            + (f"; best of all {pct('certified_error_best')}" if m.get("certified_error_best") is not None else "")
            + f"), acc-disc {m.get('acc_disc', float('nan')):.3f}, "
            f"{record['wall_time_s']:.0f}s")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m realdata.train", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description=f"Train one network with one method ({', '.join(TRAIN_METHODS)}), evaluate it "
                                "(standard, robust, certified error, per-class errors, accuracy discrepancy, unstable "
                                "ReLUs) and write one JSON record. Checkpoints every epoch and resumes; runs "
                                "data-parallel under torchrun.",
                    epilog=recipe_epilog())
    add_run_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole record as JSON instead of one line")
    parser.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                        help="train at most this many epochs in this call, keep the checkpoint and exit "
                             "(e.g. to fit a cluster time limit); the same command resumes")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    add_config_arguments(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    overrides = config_overrides(args)
    dataset, method = overrides.pop("dataset", "cifar10"), overrides.pop("method", None)
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if method is None:
        raise UserError(f"--method is required; choose one of {', '.join(TRAIN_METHODS)}.")
    config = make_config(dataset, method, args.recipe, **overrides)
    if args.print_config:
        print(json.dumps(config_as_dict(config), indent=1))
        return 0
    if args.stop_after is not None and args.stop_after < 1:
        raise UserError(f"--stop-after must be a positive number of epochs, got {args.stop_after}.")
    check_run_options(args)
    record_file, _ = paths(config, args.out, args.device)
    existed = record_file.exists() and not args.force
    record = train(config, out=args.out, data_dir=args.data_dir, device=args.device, force=args.force,
                   progress=not args.quiet, stop_after=args.stop_after)
    if record is None:
        if distributed_rank() == 0:
            print(f"stopped after {args.stop_after} epoch(s); rerun the same command to resume.", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(record, indent=1))
    else:
        print(("skipped (record exists, --force reruns): " if existed else "") + summary_line(record) + f" -> {record_file}")
    return 0


def config_as_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)


def distributed_rank() -> int:
    """This process's rank under torchrun (0 otherwise), without joining the group."""
    return int(os.environ.get("RANK", "0"))


if __name__ == "__main__":
    sys.exit(run_main(main))
