"""Every command refuses every bad input of `tests/bad_inputs.py` with exit 2, one line on stderr,
no traceback and no file touched; a hypothesis fuzz of each command's argv never ends in a
traceback.  Everything runs in-process (`main(argv)` through the command's own runner)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realdata.errors import run_main
from realdata.validate import check_out_dir
from theory.errors import run_cli


def _load_table():
    """tests/bad_inputs.py is a script too (before/after reports), so it is loaded by path."""
    spec = importlib.util.spec_from_file_location("bad_inputs", Path(__file__).with_name("bad_inputs.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module
    spec.loader.exec_module(module)
    return module


bad_inputs = _load_table()


def run(command: str, argv: list[str], capsys) -> tuple[int, list[str]]:
    """(exit code, non-empty stderr lines) of `python -m command argv`, in-process; any
    exception other than the runner's exit is a traceback and fails the test."""
    module = importlib.import_module(command)
    runner = run_cli if command.startswith("theory.") else run_main
    capsys.readouterr()
    try:
        code = runner(module.main, argv)
    except SystemExit as stop:  # --help
        code = stop.code or 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def _files(tmp: Path) -> dict:
    """Every file and its modification time (an empty output folder may be created: the
    commands create it and probe a write before anything that needs the data)."""
    return {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if not p.is_dir()}


def _setup(case, tmp: Path, capsys) -> list[str]:
    _, command, extra, setup = case
    bad_inputs.prepare(tmp)
    argv = bad_inputs.expand(bad_inputs.BASELINES[command] + extra, tmp)
    if setup == "damaged_dataset":
        bad_inputs.damaged_dataset(tmp)
    elif setup:
        bad_inputs._damage(setup, tmp / "out", lambda: run(command, argv, capsys))
    return argv


def _slow(case):
    return pytest.param(case, id=bad_inputs.case_id(case), marks=pytest.mark.slow if case[3] else ())


@pytest.mark.parametrize("case", [_slow(c) for c in bad_inputs.CASES])
def test_bad_input_is_one_sentence_exit_2_and_touches_nothing(case, tmp_path, capsys):
    argv = _setup(case, tmp_path, capsys)
    before = _files(tmp_path)
    code, err = run(case[1], argv, capsys)
    assert (code, len(err)) == (2, 1), err
    assert err[0].startswith("error: ") and "Traceback" not in err[0]
    assert _files(tmp_path) == before, "a refused command changed files"


@pytest.mark.slow
@pytest.mark.parametrize("cls, command, extra", bad_inputs.ACCEPTED, ids=lambda v: str(v))
def test_fraction_budgets_are_accepted_everywhere(cls, command, extra, tmp_path, capsys):
    bad_inputs.prepare(tmp_path)
    code, err = run(command, bad_inputs.expand(bad_inputs.BASELINES[command] + extra, tmp_path), capsys)
    assert code == 0, err


# --------------------------------------------------------------------------- argv fuzz

class Accepted(BaseException):
    """Raised where a command would start its work: its input passed every check.  Not an
    Exception: a sweep keeps going past a cell's Exception (a bug), and this must stop it."""


def _accept(*args, **kwargs):
    raise Accepted


def _accept_after_out(*args, out="results", **kwargs):
    check_out_dir(out)
    raise Accepted


#: Where each command's work starts; the fuzz stops there (validation is what it tests).
WORK = {
    "realdata.train": [("realdata.train", "train", _accept_after_out)],
    "realdata.sweep": [("realdata.sweep", "train", _accept_after_out)],
    "simulate.one_step": [("simulate.one_step", "run_one", _accept)],
    "simulate.linear": [("simulate.linear", "run_one", _accept)],
    "simulate.spheres": [("simulate.spheres", "run_one", _accept)],
    "theory.check_theorem": [("theory.check_theorem", "full_run", _accept)],
    "figures.poster": [("figures.poster", "render", _accept), ("figures.poster", "run_missing", _accept),
                       ("figures.poster", "compose_poster", _accept)],
}

NASTY = ["nan", "inf", "-inf", "-1", "0", "1", "2.5", "1e308", "1e-320", "1/0", "4/5", "", ",", "a,b", "st,at",
         "l2", "quick", "none", "1" + "0" * 30, "-0", "0x10", "１", "é", "1,2,3"]
PATH_FLAGS = {"out", "results", "data_dir"}


def _flags(command):
    parser = importlib.import_module(command).build_parser()
    return [(a.option_strings[-1], a.dest) for a in parser._actions if a.option_strings and a.dest != "help"]


def argv_strategy(command, tmp: Path):
    paths = st.sampled_from([str(tmp / "out"), str(tmp / "afile"), "", str(tmp / "afile" / "x"), str(tmp / "none")])
    values = st.one_of(st.sampled_from(NASTY), st.floats(allow_nan=True).map(repr),
                       st.integers(-10**20, 10**20).map(str), st.text(max_size=6))

    def pair(flag_dest):
        flag, dest = flag_dest
        return (paths if dest in PATH_FLAGS else values).map(lambda v: [flag, v])

    pairs = st.lists(st.sampled_from(_flags(command)).flatmap(pair), max_size=3)
    return pairs.map(lambda ps: bad_inputs.expand(bad_inputs.BASELINES[command], tmp) + [t for p in ps for t in p])


@pytest.mark.slow
@pytest.mark.parametrize("command", list(bad_inputs.BASELINES))
def test_argv_fuzz_exits_0_or_2_never_a_traceback(command, tmp_path, capsys, monkeypatch):
    bad_inputs.prepare(tmp_path)
    for module, name, stub in WORK[command]:
        monkeypatch.setattr(importlib.import_module(module), name, stub)

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(argv_strategy(command, tmp_path))
    def check(argv):
        try:
            code, err = run(command, argv, capsys)
        except Accepted:
            return
        assert code in (0, 2), (argv, err)
        if code == 2:
            assert len(err) == 1 and err[0].startswith("error: "), (argv, err)

    check()
