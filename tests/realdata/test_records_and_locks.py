"""Records: schema check, refusal to overwrite, umask; one lock per record (two real processes);
a sweep that runs every cell it can; check_theorem's unresolved points."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realdata.errors import UserError
from realdata.locks import acquire, lock_path, release
from realdata.recipes import make_config
from realdata.results import load_records, make_record, write_json_atomic, write_record
from realdata.sweep import run_grid
from realdata.train import paths

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
ONE_STEP = [sys.executable, "-m", "simulate.one_step", "--d", "10", "--n", "200", "--batches", "2", "--n-test", "10"]


def _record(config=None):
    return make_record("train", "run", config or {"eps": 0.1, "seed": 0}, 0, {"standard_error": 0.1})


def test_readers_skip_and_name_foreign_partial_and_folder_records(tmp_path):
    write_json_atomic(tmp_path / "good.json", _record())
    (tmp_path / "foreign.json").write_text('{"hello": 1}')
    (tmp_path / "partial.json").write_text(json.dumps({"schema": 1, "kind": "train", "name": "x", "config": {}}))
    (tmp_path / "rate.json").write_text(json.dumps(dict(_record(), metrics={"robust_error": 7})))
    (tmp_path / "folder.json").mkdir()
    records, problems = load_records(tmp_path)
    assert [Path(r["_path"]).name for r in records] == ["good.json"]
    named = " ".join(problems)
    for name in ("foreign.json", "partial.json", "rate.json", "folder.json"):
        assert name in named
    assert all(p.startswith("skipped: ") for p in problems)


def test_writers_refuse_a_foreign_file_and_replace_their_own(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(UserError, match="not a result record"):
        write_record(path, _record())
    path.unlink()
    write_record(path, _record())
    write_record(path, _record())  # --force: the same configuration's record is replaced
    with pytest.raises(UserError, match="another configuration"):
        write_record(path, _record({"eps": 0.2, "seed": 0}))


def test_no_record_has_a_non_finite_configuration_value():
    config = make_config("digits", "st", epochs=1)
    object.__setattr__(config, "lr", float("nan"))  # as a buggy caller could
    with pytest.raises(UserError, match="finite"):
        make_record("train", "x", config, 0, {})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_a_held_lock_names_its_process_and_a_killed_ones_is_taken_over(tmp_path):
    record = tmp_path / "run.json"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from realdata.locks import acquire; "
                               f"acquire({str(record)!r}); print('held', flush=True); time.sleep(60)"],
                              env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"process {holder.pid} on .* is already computing run.json"):
            acquire(record)
    finally:
        holder.kill()
        holder.wait()
    assert lock_path(record).exists()      # left behind by the killed process
    path = acquire(record)                 # stale: taken over
    assert json.loads(path.read_text())["pid"] == os.getpid()
    release(path)
    assert not path.exists()


@pytest.mark.slow
def test_two_identical_runs_compute_once(tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(ONE_STEP + ["--out", str(out)], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    computed = [rc == 0 and "skip" not in err for rc, err in results]
    refused = [rc == 2 and "is already computing" in err for rc, err in results]
    skipped = [rc == 0 and "skip" in err for rc, err in results]
    assert sum(computed) == 1, results
    assert sum(refused) + sum(skipped) == 1, results
    assert len(list(out.glob("*.json"))) == 1 and not list(out.glob("*.lock"))


@pytest.mark.slow
def test_a_sweep_runs_every_cell_it_can_then_lists_the_damaged_ones(tmp_path):
    options = dict(epochs=1, width=8, eval_bound="none", eval_steps=2)
    bad = paths(make_config("digits", "st", "quick", eps=0.2, seed=0, **options), tmp_path)[0]
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("{broken")
    with pytest.raises(UserError) as err:
        run_grid("digits", ["st"], [0.1, 0.2], [0], overrides=options, out=tmp_path, progress=False)
    message = str(err.value)
    assert "1 of 2 cells did not run" in message and bad.name in message and "rerun the same command" in message
    assert len(load_records(tmp_path)[0]) == 1   # the healthy cell ran
    assert bad.read_text() == "{broken"          # and the damaged file is untouched


def test_check_theorem_calls_an_underflowing_gap_unresolved_not_a_violation(capsys):
    from theory.check_theorem import main
    assert main(["--eps", "0.8", "--ratio", "5", "--b=-1e6"]) == 0
    assert "unresolved" in capsys.readouterr().out
