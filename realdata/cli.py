"""Command-line plumbing shared by `realdata.train` and `realdata.sweep`.

Every `TrainConfig` field becomes a flag (``--batch-size``, ``--lr-milestones``, ...)
whose default is "take the recipe's value", so one recipe plus a few flags describes
any run and the two entry points cannot drift apart.
"""
from __future__ import annotations

import argparse

from realdata.errors import UserError, parse_eps, parse_list
from realdata.recipes import RECIPES, config_fields, describe_recipes
from realdata.validate import check_in_dir, check_out_dir
from theory.errors import usage_sentence


class Parser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one sentence and exit code 2 via run_main."""

    def error(self, message):
        raise UserError(f"{usage_sentence(message)}; see {self.prog} --help.")


def _typed(parse):
    """Wrap a parser so argparse reports our sentence instead of 'invalid value'."""
    def convert(text):
        try:
            return parse(text)
        except (UserError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _optional(parse):
    def convert(text):
        return None if str(text).strip().lower() in ("none", "") else parse(text)
    return convert


def _int(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"expected an integer, got {text!r}.") from None


def _positive(text) -> int:
    value = _int(text)
    if value < 1:
        raise UserError(f"expected a positive integer, got {text!r}.")
    return value


#: argparse type of a count (repeats, images, threads, steps): 0, -1 or "abc" is one sentence
#: and exit 2 through `Parser` and `run_main`, before any work
positive_int = _typed(_positive)


def parse_indices(text: str, names, flag: str) -> list[int]:
    """`0,2` → [0, 2]: comma-separated indices into `names` (what a flag numbers, e.g. a
    benchmark's networks); anything else is one sentence naming the choices."""
    items = parse_list(text)
    if not all(item.isdigit() and int(item) < len(names) for item in items):
        choices = ", ".join(f"{i} ({name})" for i, name in enumerate(names))
        raise UserError(f"{flag} takes indices among {choices}, got {text!r}.")
    return [int(item) for item in items]


def _float(text) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"expected a number, got {text!r}.") from None


def _scalar(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def parse_params(text: str) -> dict:
    """`preset=2023,d=10` → {"preset": 2023, "d": 10} (numbers become numbers)."""
    out = {}
    for item in parse_list(text):
        if "=" not in item:
            raise UserError(f"expected key=value pairs such as preset=2023,d=10, got {item!r}.")
        key, value = item.split("=", 1)
        out[key.strip()] = _scalar(value.strip())
    return out


def _milestones(text: str) -> tuple:
    return () if str(text).strip().lower() in ("none", "") else tuple(parse_list(text, _int))


def _converter(f):
    if f.metadata.get("eps"):
        return parse_eps
    kind = str(f.type)
    if f.name == "data_params":
        return parse_params
    if f.name == "lr_milestones":
        return _milestones
    base = _int if kind.startswith("int") else _float if kind.startswith("float") else str
    return _optional(base) if "None" in kind else base


def add_config_arguments(parser: argparse.ArgumentParser, exclude=()) -> None:
    """One flag per TrainConfig field (except `exclude`); unset flags keep the recipe's value."""
    group = parser.add_argument_group("configuration (defaults: the recipe's values, see below)")
    for f in config_fields():
        if f.name in exclude or f.name == "recipe":
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if "choices" in f.metadata:
            help_text += f" ({', '.join(f.metadata['choices'])})"
        if str(f.type) == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        names = [flag] + (["--eval"] if f.name == "eval_attack" else [])
        group.add_argument(*names, dest=f.name, type=_typed(_converter(f)), default=None,
                           metavar=f.name.upper(), help=help_text)


def config_overrides(args: argparse.Namespace, exclude=()) -> dict:
    """The configuration flags the user gave (None = not given)."""
    return {f.name: getattr(args, f.name) for f in config_fields()
            if f.name not in exclude and f.name != "recipe" and getattr(args, f.name, None) is not None}


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say where and how a run happens, not what it computes."""
    parser.add_argument("--recipe", default="quick", choices=sorted(RECIPES),
                        help="named hyperparameter preset: 'paper' (docs/PAPER.md §3-4) or 'quick' (CPU minutes)")
    parser.add_argument("--out", default="results", help="folder of result records and checkpoints (default: results)")
    parser.add_argument("--data-dir", default=None,
                        help="dataset folder (CIFAR-10 batches or archive; MNIST-format IDX files; tiny-imagenet-200); "
                             "default: $CIFAR10_DIR / $MNIST_DIR / $FASHION_MNIST_DIR / $TINYIMAGENET_DIR, then the "
                             "shared CIFAR subset or /usr/share/datasets/fashion-mnist")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when visible)")
    parser.add_argument("--force", action="store_true", help="recompute even if the record exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def check_run_options(args: argparse.Namespace) -> None:
    """The run options of `add_run_arguments`, before any work: the device exists, the data
    folder (if given) is a folder, and the output folder is created and takes a file (last,
    so a refused command creates nothing)."""
    from realdata.distributed import resolve_device

    resolve_device(args.device)
    if args.data_dir is not None:
        check_in_dir(args.data_dir, "--data-dir")
    check_out_dir(args.out)


RECIPE_EPILOG = (
    "recipes (values marked * are INFERRED: the sources leave them open; every 'quick' value is this\n"
    "toolkit's CPU-scale choice; ε is in input/pixel space, normalisation is a model layer):\n")


def recipe_epilog() -> str:
    return RECIPE_EPILOG + describe_recipes()
