"""Bad command-line input → one sentence on stderr and exit code 2 (docs/DESIGN.md), without realdata.

`theory` depends on nothing else in the repository, so it carries this small copy of the convention.
"""
from __future__ import annotations

import argparse
import math
import sys

EXIT_USAGE = 2


class InputError(ValueError):
    """Input the user must fix; the message is one sentence saying how."""


class Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as an InputError instead of printing usage and exiting."""

    def error(self, message):
        raise InputError(f"{usage_sentence(message)}; see --help.")


def usage_sentence(message: str) -> str:
    """argparse's complaint as our sentence: no doubled full stop, and for a flag "expected one
    argument" the likely cause, a value that begins with '-' (argparse reads -inf or -1e3 as a
    flag), with the fix."""
    message = message.rstrip(".")
    if message.startswith("argument ") and message.endswith("expected one argument"):
        flag = message[len("argument "):].split(":")[0].split("/")[0]
        message += f" (give one; a value that begins with '-' must be joined to it: {flag}=VALUE)"
    return message


def require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def finite(name: str, value: float) -> float:
    require(math.isfinite(value), f"--{name} must be a finite number, got {value}.")
    return value


def number(text: str) -> float:
    """A command-line number, a fraction such as 4/5 included (as realdata's budgets)."""
    s = str(text).strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            return float(num) / float(den)
        return float(s)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"cannot read {text!r}; write a number such as 0.8 or a fraction such as 4/5") from None


def run_cli(main, argv=None) -> int:
    """Run `main(argv)`; an InputError becomes `error: <sentence>` on stderr and exit code 2."""
    try:
        return main(argv) or 0
    except InputError as err:
        print("error: " + " ".join(str(err).splitlines()), file=sys.stderr)  # typed values may hold line breaks
        return EXIT_USAGE
