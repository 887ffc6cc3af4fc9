"""Train one method at the learning rates of the grid and keep the one the papers' rule picks.

The linear-distribution and spheres experiments share this: each learning rate is a
`realdata.recipes.TrainConfig` trained by `realdata.train.fit` on a model from
`realdata.models.build_model`; `simulate.lr_rule` decides which runs need a test-set
attack at all (only those that interpolate the training set), which of them has the
lowest test robust error, and the chosen run gets the full evaluation.  A rate that can
no longer be chosen is not trained: once a larger rate interpolates with zero robust and
zero standard error, nothing smaller can outrank it (`lr_search`).

Evaluations are caller-supplied functions model → `realdata.evaluate.evaluate`'s dict.
A `select_fn` may rank the candidates with a cheaper attack than the final `evaluate_fn`
(spheres: one Auto-PGD restart instead of five per loss, where the full evaluation of
10 000 points dominates the cost); without it the final evaluation ranks them too and
is computed once per candidate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Callable

import torch
from torch import nn

from realdata.errors import UserError
from realdata.methods import EPS_FREE_METHODS
from realdata.results import config_hash
from realdata.models import build_model
from realdata.recipes import TrainConfig
from realdata.train import clean_error, fit
from simulate.lr_rule import eligible, lowest_robust_error
from simulate.runner import run_configs
from simulate.tightness import tightness

Evaluate = Callable[[nn.Module], dict]


@dataclass
class Run:
    """One trained learning rate: its model, history and training error."""

    lr: float
    model: nn.Module | None
    history: list = field(default_factory=list)
    train_error: float = math.nan
    train_time_s: float = 0.0
    divergence: str | None = None   # realdata.health's reason, when the run diverged


#: Training sets at least this large checkpoint every epoch: there an epoch costs far more than
#: the ~10 ms a checkpoint write takes, which would otherwise dominate the tiny n = 50 runs.
CHECKPOINT_MIN_N = 1000


def checkpoint_path(prefix, config: TrainConfig, n: int):
    """Where the run at `config.lr` checkpoints (None: not worth it, or nowhere to write)."""
    if prefix is None or n < CHECKPOINT_MIN_N:
        return None
    return prefix.with_name(f"{prefix.name}-lr{config.lr:g}.ckpt")


def train_at_lr(config: TrainConfig, dataset, threat, callback=None, progress: bool = True, checkpoint=None) -> Run:
    """Fit `config` (its lr included), resuming from `checkpoint` if given.

    A run that diverged (`realdata.health`: non-finite loss, loss blow-up, chance-level
    error after the warm-up) becomes a failed Run the rule never picks.  Every other error
    (a damaged checkpoint, missing data, a disk error, a bug) propagates: the search stops
    rather than rank the learning rates it could train.
    """
    model = build_model(config.arch, dataset, seed=config.seed, width=config.width, depth=config.depth)
    torch.manual_seed(config.seed)  # anything in the loop that draws from the global RNG follows the seed
    began = time.perf_counter()
    result = fit(config, dataset, model, threat=threat, callback=callback, checkpoint=checkpoint, progress=progress)
    if result.divergence is not None:
        return Run(lr=config.lr, model=None, history=result.history, train_time_s=time.perf_counter() - began,
                   divergence=result.divergence)
    return Run(lr=config.lr, model=result.model, history=result.history,
               train_error=clean_error(result.model, dataset.x_train, dataset.y_train),
               train_time_s=time.perf_counter() - began)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _timed(fn: Evaluate, model) -> tuple[dict, float]:
    began = time.perf_counter()
    out = fn(model)
    return out, time.perf_counter() - began


@dataclass
class Choice:
    run: Run
    metrics: dict          # the final evaluation of the chosen run
    interpolated: bool     # did any learning rate reach zero training error
    candidates: list       # per learning rate: training error, costs, and the ranking evaluation if one ran
    eval_time_s: float

    def record_parts(self, dataset, base: TrainConfig) -> tuple[dict, list, dict]:
        """(metrics, history, extra) of the chosen run, as `simulate.runner.run_configs` records them;
        extra holds the resolved training config (`base` at the chosen lr) and the data's parameters."""
        metrics = dict(self.metrics, lr=self.run.lr, train_error=self.run.train_error,
                       interpolated=self.interpolated, train_time_s=self.run.train_time_s,
                       eval_time_s=self.eval_time_s)
        # the rule only ever picks a run that finished, so the record is a healthy one
        return metrics, self.run.history, {"lr_search": self.candidates, "data": dataset.params,
                                           "train_config": replace(base, lr=self.run.lr),
                                           "diverged": False, "divergence": None,
                                           "num_classes": dataset.num_classes}


class TrainedRuns:
    """Trained runs a later configuration of the same sweep may reuse.

    A method whose training never sees ε (`realdata.methods.EPS_FREE_METHODS`: ST) trains
    the same model at every budget, so an ε sweep trains it once per learning rate and
    only evaluates it per budget.  Everything else trains afresh.
    """

    def __init__(self):
        self._runs: dict[str, Run] = {}

    @staticmethod
    def shares_training(config) -> bool:
        return config.method in EPS_FREE_METHODS

    def get(self, config: TrainConfig, train: Callable[[], Run]) -> Run:
        if not self.shares_training(config):
            return train()
        key = config_hash(replace(config, eps=0.0))  # everything but ε decides the model
        if key not in self._runs:
            self._runs[key] = train()
        return self._runs[key]


def training_group(config):
    """`simulate.runner.run_configs`' group key: an ε-free method's budgets share one worker."""
    return replace(config, eps=0.0) if TrainedRuns.shares_training(config) else config


def lr_search(base: TrainConfig, lrs, dataset, threat, evaluate_fn: Evaluate, select_fn: Evaluate | None = None,
              callback=None, progress: bool = True, checkpoint_prefix=None, trained: TrainedRuns | None = None) -> Choice:
    """Train `base` at each lr of `lrs` and apply the rule; see the module docstring.

    The rates train from the largest down, and a run that interpolates is ranked at once.
    One that reaches zero robust and zero standard error holds the rule's best possible rank
    (ties go to the larger rate), so no smaller rate can be chosen and none is trained: its
    row says so (`skipped`).  `callback` (realdata.train's per-epoch hook) runs only while
    re-fitting the chosen rate (without a checkpoint: resuming the finished one would skip the
    hook).  `trained` reuses the runs of an ε-free method trained for another budget of the
    same sweep.
    """
    n = len(dataset.y_train)
    trained = trained or TrainedRuns()
    rank = select_fn or evaluate_fn
    runs, rows, evaluated = {}, {}, {}  # evaluated: lr → (final metrics, seconds) when ranking used the final one
    keep = evaluated if select_fn is None else None
    order = sorted(map(float, lrs), reverse=True)
    perfect = None
    for lr in order:
        if perfect is not None:
            rows[lr] = {"lr": lr, "skipped": f"not trained: lr {perfect:g} interpolated with 0 robust and 0 standard "
                                             "error, a rank no smaller rate can beat"}
            continue
        config = replace(base, lr=lr)
        run = runs[lr] = trained.get(config, lambda config=config: train_at_lr(
            config, dataset, threat, None, progress, checkpoint_path(checkpoint_prefix, config, n)))
        rows[lr] = row = {"lr": lr, "train_error": run.train_error, "train_time_s": round(run.train_time_s, 3)}
        if run.divergence:
            row["divergence"] = run.divergence
        if run.train_error == 0 and lr != order[-1]:  # the smallest rate is ranked only if the pool needs it
            _rank_row(row, rank, run.model, keep)
            if row["rank_robust_error"] == 0 and row["rank_standard_error"] == 0:
                perfect = lr
    if all(run.model is None for run in runs.values()):
        first = next(iter(runs.values()))
        raise UserError(f"{base.method} diverged at every learning rate {', '.join(map(str, lrs))} "
                        f"({first.divergence}); try smaller learning rates.")
    pool, interpolated = eligible([rows[lr] for lr in runs])
    if len(pool) == 1:
        chosen = pool[0]
    else:
        for row in pool:
            if "rank_robust_error" not in row:
                _rank_row(row, rank, runs[row["lr"]].model, keep)
        best = lowest_robust_error([dict(r, standard_error=r["rank_standard_error"]) for r in pool],
                                   key="rank_robust_error")
        chosen = next(r for r in pool if r["lr"] == best["lr"])
    run = runs[chosen["lr"]]
    if callback is not None:
        # Per-epoch measurements cost an attack per epoch; taking them only for the chosen rate
        # means training it once more, which reproduces the same model (every random stream of
        # fit and build_model is seeded from the config).
        refit = train_at_lr(replace(base, lr=run.lr), dataset, threat, callback, progress)
        if refit.model is None or not _same_weights(refit.model, run.model):
            raise RuntimeError(f"re-fitting {base.method} at lr={run.lr} for its per-epoch history gave a different "
                               "model; training is not deterministic on this machine, so the history would not "
                               "describe the evaluated model.")
        run = refit
    final, final_time = evaluated.get(run.lr) or _timed(evaluate_fn, run.model)
    candidates = [rows[float(lr)] for lr in lrs]  # the grid's order
    for row in candidates:
        row["chosen"] = row["lr"] == chosen["lr"]
    return Choice(run=run, metrics=final, interpolated=interpolated, candidates=candidates,
                  eval_time_s=final_time)


def _rank_row(row: dict, rank: Evaluate, model, keep: dict | None) -> None:
    """Rank one candidate: its test errors under `rank` go into its row; `keep` (when the ranking
    evaluation is the final one) remembers the metrics so the chosen run is not evaluated twice."""
    metrics, spent = _timed(rank, model)
    row.update(rank_standard_error=metrics["standard_error"], rank_robust_error=metrics["robust_error"],
               rank_eval_time_s=round(spent, 3))
    if keep is not None:
        keep[row["lr"]] = (metrics, spent)


def searched_record(config, base: TrainConfig, dataset, threat, final: Evaluate, *, attack: str,
                    attack_options: dict | None = None, select_fn: Evaluate | None = None, callback=None,
                    progress: bool = True, checkpoint=None, trained: TrainedRuns | None = None):
    """One synthetic run's record parts (metrics, history, extra): `lr_search` over `config.lrs`,
    the chosen run's record parts, and the relaxation's looseness on the test set (`tightness`,
    measured with `attack`)."""
    choice = lr_search(base, config.lrs, dataset, threat, final, select_fn=select_fn, callback=callback,
                       progress=progress, checkpoint_prefix=checkpoint, trained=trained)
    metrics, history, extra = choice.record_parts(dataset, base)
    found = tightness(config.method, choice.run.model, dataset.x_test, dataset.y_test, threat, attack,
                      **(attack_options or {}))
    return {**metrics, **found}, history, extra


def run_searched(kind: str, run_one: Callable, configs, out="results", force: bool = False, progress: bool = True,
                 jobs: int = 1) -> list[dict]:
    """Run each config of a `kind` experiment with `run_one(config, progress, checkpoint, trained)`
    (one record each); finished records are reused unless `force`.

    ST trains once per learning rate for all budgets of a sweep (`TrainedRuns`); with
    `jobs > 1` its budgets run in one worker so they still share it.
    """
    return run_configs(kind, configs, partial(run_one, trained=TrainedRuns()), out=out, force=force,
                       progress=progress, jobs=jobs, group=training_group)
