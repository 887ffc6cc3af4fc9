"""benchmarks.linear's driver: bad flags and an unknown reference revision exit 2 before any
measurement; the grid's extrapolation counts every training and evaluation once."""
import pytest

from benchmarks import linear
from realdata.errors import run_main


@pytest.mark.parametrize("argv", [["--reference", "no-such-revision"], ["--repeats", "0"], ["--eps", "-1"], ["--eps", "inf"]])
def test_bad_input_exits_2_before_measuring(argv, capsys, monkeypatch):
    monkeypatch.setattr(linear, "run_worker", lambda *a: pytest.fail("measured despite bad input"))
    assert run_main(linear.main, argv) == 2
    assert "error:" in capsys.readouterr().err


def test_extrapolation_counts_each_part():
    # cpu s: ST 1/epoch trained once per lr; AT and COAP per ε and lr; one evaluation per method, ε and lr
    times = {"st": (0, 2.0), "at": (0, 4.0), "coap": (0, 6.0), "eval": (0, 1.0)}
    grid = linear.extrapolate(times, epochs=2, grid_eps=6, lrs=3, full_epochs=100)
    assert grid == 100 * (3 * 1.0 + 6 * 3 * (2.0 + 3.0)) + 3 * 6 * 3 * 1.0
