"""The command line that reproduces a record, derived from the record's config and the
experiment's own argument parser (so a flag renamed there cannot go stale here).

Every config key that the experiment's parser has a flag for is written out, whether or
not it equals the preset's default: the command then pins the run, not a default that may
change. `method`/`seed` map to `--methods`/`--seeds` where the experiment takes lists.
"""
from __future__ import annotations

import argparse
import importlib
import shlex

#: record kind → the module whose command line wrote it
COMMAND_MODULES = {"train": "realdata.train", "spheres": "simulate.spheres", "linear": "simulate.linear",
                   "one_step": "simulate.one_step"}
# A list-valued flag of a grid command accepts one value, so a single run is its own grid.
PLURALS = {"method": "methods", "seed": "seeds"}


def _flags(module: str) -> dict:
    """`{dest: action}` of the module's optional arguments."""
    parser = importlib.import_module(module).build_parser()
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def _text(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value) if value else "none"
    if isinstance(value, float):
        return repr(value)  # exact: the run's hash depends on every digit
    return str(value)


def _accepts_none(action) -> bool:
    try:
        return action.type is not None and action.type("none") is None
    except Exception:  # argparse types raise their own error kinds
        return False


def _arguments(key, value, action) -> list[str]:
    flag = action.option_strings[0]
    if isinstance(action, argparse.BooleanOptionalAction):
        return [flag if value else f"--no-{flag[2:]}"]
    if action.nargs == 0:  # store_true: only a True value is a flag
        return [flag] if value else []
    if value is None:
        return [flag, "none"] if _accepts_none(action) else []  # else None is the flag's "not given"
    return [flag, _text(value)]


def reproduce_command(record: dict, out: str | None = None) -> str | None:
    """`python -m <module> --flag value ...` for the record's kind, or None for a kind no
    command of this toolkit writes."""
    module = COMMAND_MODULES.get(record.get("kind"))
    if module is None:
        return None
    flags = _flags(module)
    words = ["python", "-m", module]
    for key, value in (record.get("config") or {}).items():
        dest = key if key in flags else PLURALS.get(key)
        if dest in flags and dest not in ("out", "force", "quiet", "json"):
            words += _arguments(key, value, flags[dest])
    if out is not None and "out" in flags:
        words += ["--out", str(out)]
    return shlex.join(words)
