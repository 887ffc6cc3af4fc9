"""User-facing errors and the command-line conventions shared by every entry point.

Bad input gets one clear sentence naming the fix and exit code 2 (docs/DESIGN.md).
Code raises `UserError`; `run_main` turns it into that sentence.
"""
from __future__ import annotations

import sys

EXIT_USAGE = 2


class UserError(ValueError):
    """An error caused by the user's input; its message says how to fix it."""


def parse_eps(text: str | float) -> float:
    """Parse a budget such as `0.5`, `36/255` or `1e-2` (input/pixel scale); reject negatives."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip()
        try:
            if "/" in s:
                num, den = s.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(s)
        except (ValueError, ZeroDivisionError):
            raise UserError(f"cannot read the budget {text!r}; write it as a number such as 0.5 or a fraction such as 36/255.") from None
    if value != value or value < 0 or value == float("inf"):
        raise UserError(f"the budget eps must be a finite non-negative number, got {text!r}.")
    return value


def parse_list(text: str, item=str) -> list:
    """Parse a comma-separated command-line list (`at,coap` or `9/255,18/255`)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise UserError(f"expected a comma-separated list, got {text!r}.")
    return [item(p) for p in parts]


def parse_seeds(text: str) -> list[int]:
    """`0,1,2` → [0, 1, 2]; anything but non-negative integers is a UserError."""
    def seed(item: str) -> int:
        try:
            value = int(item)
        except ValueError:
            value = -1
        if not 0 <= value < 2**32:
            raise UserError(f"seeds are non-negative integers below 2**32 such as 0,1,2; got {item!r}.")
        return value
    return parse_list(text, seed)


def one_line(message) -> str:
    """The message on one line: a value the user typed may hold a line break."""
    return " ".join(str(message).splitlines())


def run_main(main, argv=None) -> int:
    """Run a CLI `main(argv)`; a UserError becomes one line on stderr and exit code 2."""
    try:
        return main(argv) or 0
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; finished results and the last checkpoint are kept.", file=sys.stderr)
        return 130
