"""The grid runner: one record per cell, finished cells skipped, a table at the end."""
import json

import pytest

from realdata.errors import UserError, run_main
from realdata.sweep import format_table, grid_configs, main, run_grid

# large enough to learn: a run at chance is set apart in the table as collapsed
SMALL = {"train_size": 200, "test_size": 30, "epochs": 3, "batch_size": 50, "width": 32, "depth": 1, "lr": 0.02,
         "eval_steps": 3}


def test_grid_runs_every_cell_once_and_tabulates(tmp_path):
    lines = []
    records = run_grid("digits", ["st", "ibp"], [0.1, 0.2], [0, 1], overrides=SMALL, out=tmp_path, progress=False,
                       log=lines.append)
    assert len(records) == 8 and len(list(tmp_path.glob("*.json"))) == 8 and len(lines) == 8
    cells = {(r["config"]["method"], r["config"]["eps"], r["config"]["seed"]) for r in records}
    assert cells == {(m, e, s) for m in ("st", "ibp") for e in (0.1, 0.2) for s in (0, 1)}
    table = format_table(records).splitlines()
    assert table[0].split()[:5] == ["dataset", "method", "norm", "eps", "seeds"]
    assert len(table) == 1 + 4 and all(row.split()[4] == "2" for row in table[1:])
    # a second sweep finds every record and recomputes nothing
    again = run_grid("digits", ["st", "ibp"], [0.1, 0.2], [0, 1], overrides=SMALL, out=tmp_path, progress=False)
    assert [r["created"] for r in again] == [r["created"] for r in records]


def test_table_mean_and_spread():
    recs = [{"config": {"dataset": "d", "method": "at", "norm": "l2", "eps": 0.5},
             "metrics": {"standard_error": v, "robust_error": None}} for v in (0.1, 0.3)]
    row = format_table(recs).splitlines()[1].split()
    assert row[5] == "0.200±0.141" and row[6] == "n/a"


def test_grid_configs_order_and_overrides():
    configs = grid_configs("digits", ["at", "coap"], [0.1], [3, 4], overrides={"epochs": 2})
    assert [(c.method, c.seed) for c in configs] == [("at", 3), ("at", 4), ("coap", 3), ("coap", 4)]
    assert all(c.epochs == 2 and c.recipe == "quick" for c in configs)
    with pytest.raises(UserError, match="choose one of st, at"):
        grid_configs("digits", ["at", "free-at"], [0.1], [0])


def test_cli_prints_the_table(tmp_path, capsys):
    args = ["--dataset", "digits", "--methods", "st", "--eps", "1/10", "--seeds", "0", "--out", str(tmp_path),
            "--quiet", "--train-size", "200", "--test-size", "30", "--epochs", "3", "--width", "32", "--depth", "1",
            "--lr", "0.02", "--eval-steps", "3"]
    assert run_main(main, args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dataset") and out[1].split()[:5] == ["digits", "st", "l2", "0.1", "1"]
    assert run_main(main, args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["config"]["eps"] == 0.1


@pytest.mark.parametrize("args, message", [
    (["--methods", "st,svm"], "unknown training method 'svm'"),
    (["--eps", "0.1,abc"], "cannot read the budget 'abc'"),
    (["--seeds", "0,-1"], "seeds are non-negative integers"),
    (["--dataset", "imagenet"], "choose one of"),
])
def test_cli_bad_input(tmp_path, capsys, args, message):
    assert run_main(main, ["--out", str(tmp_path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_table_sets_collapsed_and_diverged_runs_apart():
    def rec(seed, error, train_error=0.1, diverged=False):
        return {"config": {"dataset": "digits", "method": "ibp", "norm": "l2", "eps": 1.0, "seed": seed},
                "seed": seed, "num_classes": 10, "diverged": diverged,
                "metrics": {"standard_error": error, "robust_error": error, "train_error": train_error}}
    table = format_table([rec(0, 0.2), rec(1, 0.4), rec(2, 0.9, train_error=0.9), rec(3, 0.5, diverged=True)])
    header, healthy, collapsed, diverged, warning = table.splitlines()
    assert header.split()[-1] == "flags"
    # the mean and spread are of seeds 0 and 1 only
    assert healthy.split()[4:7] == ["2", "0.300±0.141", "0.300±0.141"] and healthy.split()[-1] != "collapsed"
    assert collapsed.split()[4:6] == ["seed=2", "0.900"] and collapsed.split()[-1] == "collapsed"
    assert diverged.split()[4] == "seed=3" and diverged.split()[-1] == "diverged"
    assert warning == ("warning: 2 runs collapsed or diverged and are left out of every mean and summary line: "
                       "digits ibp l2 eps=1 seed=2 (collapsed); digits ibp l2 eps=1 seed=3 (diverged).")


def test_table_of_only_collapsed_runs_has_no_mean_row():
    recs = [{"config": {"dataset": "d", "method": "at", "norm": "l2", "eps": 0.5, "seed": 0}, "seed": 0,
             "num_classes": 10, "metrics": {"standard_error": 0.9, "train_error": 0.9}}]
    lines = format_table(recs).splitlines()
    assert len(lines) == 3 and lines[1].split()[-1] == "collapsed" and lines[2].startswith("warning: 1 run ")


def test_table_shows_each_methods_gap_to_at_in_the_same_cell():
    def rec(method, eps, std, rob):
        return {"config": {"dataset": "d", "method": method, "norm": "l2", "eps": eps},
                "metrics": {"standard_error": std, "robust_error": rob}}

    table = format_table([rec("at", 0.5, 0.2, 0.4), rec("sabr", 0.5, 0.25, 0.55), rec("sabr", 1.0, 0.3, 0.7)])
    header, at, sabr, other = (line.split() for line in table.splitlines())
    gaps = header.index("std-gap"), header.index("rob-gap")
    assert [at[i] for i in gaps] == ["+0.000", "+0.000"]
    assert [sabr[i] for i in gaps] == ["+0.050", "+0.150"]
    assert len(other) == gaps[0]  # no AT at ε = 1: the gap (and flag) columns stay blank


def test_a_bug_in_one_cell_leaves_the_others_running(tmp_path, capsys, monkeypatch):
    import realdata.sweep as sweep
    real = sweep.train

    def train(config, **kw):  # a bug that only the ibp cell meets
        if config.method == "ibp":
            raise ZeroDivisionError("a bug in one cell")
        return real(config, **kw)

    monkeypatch.setattr(sweep, "train", train)
    args = ["--dataset", "digits", "--methods", "ibp,st", "--eps", "0.1", "--seeds", "0", "--out", str(tmp_path),
            "--quiet", "--train-size", "200", "--test-size", "30", "--epochs", "3", "--width", "32", "--depth", "1",
            "--lr", "0.02", "--eval-steps", "3"]
    assert run_main(main, args) == sweep.EXIT_CELLS_FAILED
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[:2] == ["digits", "st"]  # the cell after the bug ran
    assert len(list(tmp_path.glob("train-digits-st-*.json"))) == 1
    (kept,) = tmp_path.glob("*.error.txt")
    assert kept.name.startswith("train-digits-ibp-") and "ZeroDivisionError: a bug in one cell" in kept.read_text()
    assert "Traceback" in kept.read_text() and str(kept) in captured.err and "1 of 2 cells" in captured.err
    # once the bug is gone, the rerun trains only that cell and its stale traceback goes
    monkeypatch.setattr(sweep, "train", real)
    assert run_main(main, args) == 0 and not kept.exists()
    assert len(list(tmp_path.glob("train-digits-*.json"))) == 2
