"""Every benchmark refuses a bad flag with one sentence and exit 2 before it measures anything:
the function that would start the work is replaced by one that fails the test."""
import pytest

from benchmarks import attacks, bounds, host_syncs, lirpa, quick_grid
from realdata.errors import run_main


def _never(*args, **kwargs):
    pytest.fail("the benchmark started work despite a bad flag")


CASES = [
    (bounds, "compare", ["--repeats", "0"]),
    (bounds, "compare", ["--cases", "nope"]),
    (bounds, "compare", ["--cases", "0,5"]),
    (attacks, "build_model", ["--repeats", "0"]),
    (attacks, "build_model", ["--threads", "0"]),
    (attacks, "build_model", ["--batch", "x"]),
    (quick_grid, "measure", ["--datasets", "nope"]),
    (quick_grid, "measure", ["--methods", "at,nope"]),  # the valid first method must not train either
    (quick_grid, "measure", ["--seeds", "-1"]),
    (host_syncs, "_reference_counts", ["--methods", "at,nope"]),
    (host_syncs, "_reference_counts", ["--images", "0"]),
    (lirpa, "load_oracle", ["--eps", "nan"]),
    (lirpa, "load_oracle", ["--cases", "nope"]),
    (lirpa, "load_oracle", ["--lr", "inf"]),
]


@pytest.mark.parametrize("module, work, argv", CASES, ids=[f"{m.__name__.split('.')[-1]} {' '.join(a)}"
                                                            for m, _, a in CASES])
def test_bad_flag_exits_2_before_any_work(module, work, argv, capsys, monkeypatch):
    monkeypatch.setattr(module, work, _never)
    assert run_main(module.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_quick_grid_checks_the_json_folder_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(quick_grid, "measure", _never)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    argv = ["--datasets", "digits", "--methods", "st", "--out", str(tmp_path / "out"),
            "--json", str(blocked / "rows.json")]
    assert run_main(quick_grid.main, argv) == 2
    assert "--json's folder" in capsys.readouterr().err
