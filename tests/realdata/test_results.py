"""Result records: atomic writes, stable hashes, corrupt files refused, never overwritten."""
import json
from dataclasses import dataclass

import pytest

from realdata.errors import UserError, parse_eps, parse_list, parse_seeds, run_main
from realdata.results import (config_hash, existing_record, load_record, load_records, make_record,
                              record_path, write_json_atomic)


@dataclass(frozen=True)
class Cfg:
    dataset: str = "spheres"
    eps: float = 0.5
    seed: int = 0


def test_hash_is_stable_and_sensitive():
    assert config_hash(Cfg()) == config_hash({"seed": 0, "eps": 0.5, "dataset": "spheres"})
    assert config_hash(Cfg()) != config_hash(Cfg(eps=0.6))


def test_round_trip_and_listing(tmp_path):
    rec = make_record("train", "demo", Cfg(), seed=0, metrics={"standard_error": 0.25, "x": float("nan")},
                      history=[{"epoch": 0, "loss": 1.0}], wall_time_s=1.5)
    path = write_json_atomic(record_path(tmp_path, "demo", Cfg()), rec)
    assert path.name == f"demo-{config_hash(Cfg())}.json"
    back = load_record(path)
    assert back["metrics"]["standard_error"] == 0.25 and back["metrics"]["x"] is None
    assert back["versions"]["torch"] and back["config"]["eps"] == 0.5
    (tmp_path / "bad.json").write_text("{ not json")
    records, problems = load_records(tmp_path)
    assert [r["name"] for r in records] == ["demo"]
    assert len(problems) == 1 and "bad.json" in problems[0]
    assert load_records(tmp_path, kind="spheres")[0] == []
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_corrupt_record_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "run-abc.json"
    path.write_text('{"schema": 1, "kind": "tr')
    with pytest.raises(UserError, match="corrupt"):
        existing_record(path)
    assert path.read_text() == '{"schema": 1, "kind": "tr'
    assert existing_record(tmp_path / "missing.json") is None
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="not a result record"):
        load_record(path)


def test_missing_results_directory_is_one_problem(tmp_path):
    records, problems = load_records(tmp_path / "nope")
    assert records == [] and "does not exist" in problems[0]


@pytest.mark.parametrize("text,value", [("0.5", 0.5), ("36/255", 36 / 255), ("1e-2", 0.01), (" 2 ", 2.0), (0.25, 0.25)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["-0.1", "abc", "1/0", "nan", "inf", ""])
def test_parse_eps_rejects(text):
    with pytest.raises(UserError):
        parse_eps(text)


def test_parse_list_and_run_main(capsys):
    assert parse_list("at, coap,,", str) == ["at", "coap"]
    assert parse_list("9/255,0.5", parse_eps) == [pytest.approx(9 / 255), 0.5]

    def main(argv):
        raise UserError("bad thing; do this instead.")
    assert run_main(main, []) == 2
    assert capsys.readouterr().err.strip() == "error: bad thing; do this instead."


def test_parse_seeds():
    assert parse_seeds("0, 2,5") == [0, 2, 5]
    for bad in ["-1", "a", "1.5"]:
        with pytest.raises(UserError, match="non-negative integers"):
            parse_seeds(bad)
