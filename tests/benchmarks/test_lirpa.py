"""benchmarks.lirpa without auto_LiRPA (CI never has it): it says so plainly; bad flags exit 2."""
import importlib

import pytest
import torch

from benchmarks import lirpa
from realdata.errors import run_main


def test_absent_oracle_is_said_plainly(monkeypatch, capsys):
    real = importlib.import_module

    def no_lirpa(name, *args):
        if name == "auto_LiRPA":
            raise ModuleNotFoundError("No module named 'auto_LiRPA'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_lirpa)
    assert run_main(lirpa.main, ["--quick"]) == 0
    out = capsys.readouterr().out
    assert "auto_LiRPA cannot be imported" in out and "--lirpa-source" in out


@pytest.mark.parametrize("argv", [["--methods", "coap"], ["--cases", "7"], ["--iterations", "0"]])
def test_bad_flags_exit_2(argv, capsys):
    assert run_main(lirpa.main, argv) == 2
    assert "error:" in capsys.readouterr().err


def test_margin_spec_rows():
    spec = lirpa._margin_spec(torch.tensor([2]), 4)
    assert spec[0, 2].abs().sum() == 0 and spec[0, 0].tolist() == [-1, 0, 1, 0]
