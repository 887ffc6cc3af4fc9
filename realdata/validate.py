"""Input checks every command runs before any work: output folders, numbers, memory.

One table (`FIELD_LIMITS`) bounds every configuration field by name, whichever experiment's
config carries it (`TrainConfig`, the synthetic configs), so a number that passes parsing
can neither overflow later (an ε of 1e300 becomes inf in float32), nor run for ever
(10³⁰ epochs), nor ask for more memory than the machine has; and no record is ever written
with a non-finite value in its configuration.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

from realdata.errors import UserError

#: field name → (lowest, highest, integer?).  The upper ends are far beyond any experiment
#: of the papers and well inside float32 (ε, γ, radii) and time (epochs, steps) that finish.
FIELD_LIMITS = {
    "epochs": (1, 10**6, True),
    "batch_size": (1, 10**7, True),
    "attack_steps": (1, 10**5, True), "eval_steps": (1, 10**5, True), "at_steps": (1, 10**5, True),
    "attack_restarts": (1, 1000, True), "eval_restarts": (1, 1000, True), "select_restarts": (1, 1000, True),
    "train_size": (1, 10**8, True), "test_size": (1, 10**8, True),
    "n": (1, 10**9, True), "n_test": (0, 10**9, True), "d": (1, 10**7, True), "batches": (1, 10**6, True),
    "depth": (1, 100, True), "k": (1, 10**5, True), "proj": (1, 10**5, True), "seed": (0, 2**32 - 1, True),
    "width": (0, 10**5, False),
    "eps": (0, 1e6, False), "eps_start": (0, 1e6, False),
    "lr": (0, 1e9, False), "lrs": (0, 1e9, False),
    "momentum": (0, 1, False), "weight_decay": (0, 1e3, False), "lr_gamma": (0, 1e3, False),
    "grad_clip": (0, 1e9, False),
    "gamma": (0, 1e6, False), "sigma": (0, 1e6, False), "margin": (0, 1e6, False), "r0": (0, 1e6, False),
    "a": (0, 1e6, False), "b": (-1e6, 0, False), "eta": (0, 1e6, False), "theta1": (0, 1e6, False),
    "ratio": (0, 1e6, False),
}

#: The largest share of the machine's memory one data set may take.
MEMORY_FRACTION = 0.5


#: Config fields set through a flag of another name (simulate.spheres).
FLAG_ALIASES = {"r0": "--radii", "select_restarts": "--rank-restarts"}


def _flag(name: str) -> str:
    return FLAG_ALIASES.get(name, "--" + name.replace("_", "-"))


def check_number(name: str, value, low, high, integer: bool = False):
    """`value` finite, within [low, high] and, if `integer`, whole → value; else a UserError naming --name."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{_flag(name)} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise UserError(f"{_flag(name)} must be a finite number, got {value!r}.")
    if integer and value != int(value):
        raise UserError(f"{_flag(name)} must be a whole number, got {value!r}.")
    if not low <= value <= high:
        show = (lambda v: f"{int(v)}") if integer else (lambda v: f"{v:g}")  # 10000000, not 1e+07
        raise UserError(f"{_flag(name)} must lie between {show(low)} and {show(high)}, got {show(value)}.")
    return value


def _finite_everywhere(name: str, value) -> None:
    """No NaN or infinity anywhere in a config value (dicts and tuples included)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_everywhere(f"{name}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _finite_everywhere(name, item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{_flag(name.split('.')[0])} must be finite, got {name} = {value!r}.")


def check_fields(config) -> None:
    """Every field of a config dataclass: finite everywhere, and within `FIELD_LIMITS` where listed."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        _finite_everywhere(f.name, value)
        if f.name not in FIELD_LIMITS or value is None:
            continue
        low, high, integer = FIELD_LIMITS[f.name]
        for item in value if isinstance(value, (list, tuple)) else (value,):
            check_number(f.name, item, low, high, integer)
    _check_memory(config)


def machine_memory() -> int:
    """Physical memory in bytes (a generous constant where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 64 * 2**30


def _check_memory(config) -> None:
    """A synthetic data set of (n + n_test) points in d dimensions must fit in memory."""
    d, n, n_test = (getattr(config, name, None) for name in ("d", "n", "n_test"))
    if not all(isinstance(v, int) for v in (d, n)):
        return
    needed = (n + (n_test or 0)) * d * 8  # float64 at worst (one_step)
    budget = MEMORY_FRACTION * machine_memory()
    if needed > budget:
        raise UserError(f"{n + (n_test or 0)} points in d={d} dimensions need {needed / 2**30:.3g} GiB, more than "
                        f"half this machine's memory ({machine_memory() / 2**30:.3g} GiB); lower --d, --n or --n-test.")


def check_out_dir(path, flag: str = "--out") -> Path:
    """Create the output folder if needed and prove it takes a file, before any work."""
    if str(path).strip() == "":
        raise UserError(f"{flag} is empty; pass a folder, e.g. {flag} results.")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise UserError(f"cannot write in {flag} {path} ({err.strerror or err}); pass a folder you can write to.") from None
    return path


def check_in_dir(path, flag: str) -> Path:
    """A folder the command reads: it must exist and be a folder."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} {path} does not exist; pass an existing folder.")
    if not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder.")
    return path
