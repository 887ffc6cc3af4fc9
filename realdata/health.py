"""Run health: the one definition of a failed training run.

Two failures, told apart because they mean different things:

* **diverged** — optimisation broke down: the loss became non-finite, or rose far
  above where it started (the initial model's loss), or the clean training error was at
  chance at the end of the warm-up and still is at the end of training while the loss
  never fell below its start (nothing was learned, not even the constant solution).  `DivergenceMonitor` watches a run while it trains; the run stops,
  its record says ``"diverged": true`` with the reason in ``"divergence"``, and one
  warning line goes to stderr.
* **collapsed** — training finished and its objective improved, but the final training
  error is at chance: the objective was met by a trivial classifier (certified training
  at a large ε can do this).

`record_health(record)` reads either off a result record; the poster, the sweep table
and the report use only it.
"""
from __future__ import annotations

import math
import sys

#: `at_chance` accepts errors down to this fraction below chance.  Random subsets are not
#: exactly balanced, so a constant classifier can score a little under 1 − 1/K (e.g. 0.88
#: instead of 0.90 on a 1 000-image CIFAR-10 subset); 5 % of chance covers that and stays
#: far from any run that learned something (0.855 for ten classes, 0.475 for two).
CHANCE_MARGIN = 0.05

#: An epoch's mean loss this many times above its start (or above the loss of a uniform
#: prediction, ln K, whichever is larger) counts as divergence.  Certified losses rise while
#: ε ramps, but by a small factor, not by two orders of magnitude.
LOSS_BLOWUP = 100.0

#: The warm-up of the chance criterion: the schedule's warm-up plus ramp, and at least this
#: fraction of the epochs (a slow but healthy start stays near chance for an epoch or two).
MIN_WARMUP_FRACTION = 0.25


def chance_error(num_classes: int) -> float:
    """The error of a constant (or uniformly random) classifier on balanced classes."""
    if int(num_classes) < 2:
        raise ValueError(f"chance level needs at least two classes, got {num_classes}")
    return 1.0 - 1.0 / int(num_classes)


def at_chance(error, num_classes: int) -> bool:
    """Is `error` within `CHANCE_MARGIN` (relative) of chance?  A non-number is not."""
    if not _finite(error):
        return False
    return float(error) >= (1.0 - CHANCE_MARGIN) * chance_error(num_classes)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def warmup_end(epochs: int, warmup: float = 0.0, ramp: float = 0.0) -> int:
    """The epoch (1-based, finished epochs) after which the chance criterion is checked."""
    return min(int(epochs), max(1, math.ceil(warmup + ramp), math.ceil(MIN_WARMUP_FRACTION * epochs)))


class DivergenceMonitor:
    """Watches one run's losses and training errors; `reason` is set once it diverged.

    Feed it every batch loss (`batch_loss`) and every finished epoch (`epoch`); both return
    the reason the run diverged, or None while it is healthy.  `history` (a resumed run's
    epochs) restores the starting loss, so a resumed run is judged as an uninterrupted one.
    """

    def __init__(self, num_classes: int, epochs: int, warmup: float = 0.0, ramp: float = 0.0, history=()):
        self.num_classes = int(num_classes)
        self.epochs = int(epochs)
        self.check_at = warmup_end(epochs, warmup, ramp)
        self.reason: str | None = None
        self.history = list(history)
        self._start: float | None = None

    @property
    def start(self) -> float | None:
        """The run's first batch loss (the initial model's), kept in the first history row."""
        return self._start if self._start is not None else (self.history[0].get("start_loss") if self.history else None)

    def batch_loss(self, loss: float, epoch: int) -> str | None:
        if self.start is None:
            self._start = loss
        if not math.isfinite(loss):
            self.reason = f"non-finite loss ({loss}) in epoch {epoch}"
        return self.reason

    def epoch(self, entry: dict) -> str | None:
        """`entry` is a history row with `epoch` and `loss`; at epochs `check_at` and the last
        also `clean_train_error` (the objective's own error is robust or certified, which is
        near 1 for a good model early in certified training, so chance is judged on clean inputs)."""
        if not self.history and self.start is not None:
            entry["start_loss"] = self.start  # a resumed run judges against the same start
        self.history.append(entry)
        loss, start = entry["loss"], self.start if self.start is not None else entry["loss"]
        ceiling = LOSS_BLOWUP * max(start, math.log(self.num_classes))
        if not math.isfinite(loss):
            self.reason = f"non-finite loss ({loss}) in epoch {entry['epoch']}"
        elif loss > ceiling:
            self.reason = f"loss {loss:.4g} in epoch {entry['epoch']}, over {LOSS_BLOWUP:g}x its start ({start:.4g})"
        elif entry["epoch"] == self.epochs and loss >= start and self._never_left_chance():
            self.reason = (f"clean training error {entry['clean_train_error']:.3f} at chance "
                           f"({chance_error(self.num_classes):.3f}) from the end of the warm-up "
                           f"(epoch {self.check_at}) to the last epoch, and the loss {loss:.4g} never fell "
                           f"below its start ({start:.4g})")
        return self.reason

    def _never_left_chance(self) -> bool:
        """Clean training error at chance both at the end of the warm-up and at the end: the run
        never learned.  (At chance only at the end is a collapse, see `record_health`.)"""
        errors = [e.get("clean_train_error") for e in self.history if e["epoch"] in (self.check_at, self.epochs)]
        return bool(errors) and all(at_chance(err, self.num_classes) for err in errors)


def warn_diverged(what: str, reason: str) -> None:
    """The one warning line of a diverged run."""
    print(f"warning: {what} diverged: {reason}; it stops here and its record says so "
          "(lower the learning rate or set --grad-clip).", file=sys.stderr)


def record_num_classes(record: dict) -> int | None:
    """The record's number of classes: stored by the trainers, else the per-class list's length."""
    n = record.get("num_classes")
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    per_class = (record.get("metrics") or {}).get("per_class_standard_error")
    return len(per_class) if isinstance(per_class, list) and len(per_class) >= 2 else None


def final_train_error(record: dict):
    """The training error the run ended with: the metric if recorded, else the last epoch's."""
    value = (record.get("metrics") or {}).get("train_error")
    if _finite(value):
        return value
    history = record.get("history") or []
    return history[-1].get("train_error") if history and isinstance(history[-1], dict) else None


def record_health(record: dict) -> str | None:
    """"diverged", "collapsed" (final training error at chance) or None for a healthy run."""
    if record.get("diverged"):
        return "diverged"
    classes = record_num_classes(record)
    if classes is not None and at_chance(final_train_error(record), classes):
        return "collapsed"
    return None


def health_warning(records, label) -> str | None:
    """The one warning line naming every collapsed or diverged run (`label(record)` says which
    run it is), or None when there is none; the poster, the sweep table and the report print it."""
    flagged = sorted((label(r), record_health(r)) for r in records if record_health(r))
    if not flagged:
        return None
    runs = "; ".join(f"{name} ({state})" for name, state in flagged)
    several = len(flagged) > 1
    return (f"{len(flagged)} run{'s' if several else ''} collapsed or diverged and {'are' if several else 'is'} left "
            f"out of every mean and summary line: {runs}.")
