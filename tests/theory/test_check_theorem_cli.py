"""`python -m theory.check_theorem`: exit codes, JSON keys, help text and error messages."""
import json
import subprocess
import sys

import pytest

from theory import check_theorem, checks
from theory.errors import run_cli

SMALL_GRID = ["--eps-steps", "4", "--ratio-steps", "5"]
POINT_KEYS = {"grad_at", "grad_coap", "theta1_at", "theta1_coap", "risk_init", "risk_at", "risk_coap",
              "in_theorem_region", "threshold_ratio"}


def _run(argv, capsys):
    code = run_cli(check_theorem.main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_grid_json_has_the_issue_keys_and_exits_0(capsys):
    code, out, err = _run(["--json", *SMALL_GRID], capsys)
    data = json.loads(out)
    assert code == 0 and data["passed"] is True, err
    assert set(data["symbolic"]) == set(checks.CHECKS) and all(data["symbolic"].values())
    grid = data["grid"]
    assert {"cases", "in_region", "violations_in_region", "coap_worse_outside_region"} <= set(grid)
    assert grid["cases"] == 20 and grid["violations_in_region"] == 0 and grid["in_region"] > 0
    assert data["findings"]["threshold_exponent"] == 3
    assert data["boundary"]["grid_cells_contradicting"] == 0 and len(data["boundary"]["critical_ratio"]) == 4


def test_grid_exits_1_when_a_check_fails(capsys, monkeypatch):
    monkeypatch.setattr(checks, "CHECKS", {"always_fails": lambda: (False, "forced failure")})
    code, out, _ = _run(["--eps-steps", "1", "--ratio-steps", "1"], capsys)
    assert code == 1 and "FAIL  always_fails" in out and "FAILED" in out


def test_single_point_json_keys(capsys):
    code, out, _ = _run(["--eps", "0.8", "--ratio", "5", "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and POINT_KEYS <= set(data)
    assert data["in_theorem_region"] is True and data["risk_coap"] > data["risk_at"]
    assert data["grad_at"] == pytest.approx(-0.0485431, abs=5e-8)


def test_single_point_text_outside_lemma_range(capsys):
    code, out, _ = _run(["--eps", "0.3", "--ratio", "5"], capsys)
    assert code == 0 and "in the theorem's region: False" in out and "none" in out


@pytest.mark.parametrize("argv,flag", [
    (["--eps", "0", "--ratio", "5"], "--eps"),
    (["--eps", "-0.5", "--ratio", "5"], "--eps"),
    (["--eps", "0.8", "--ratio", "0"], "--ratio"),
    (["--eps", "0.8", "--ratio", "5", "--gamma", "0"], "--gamma"),
    (["--eps", "0.8", "--ratio", "5", "--a", "-1"], "--a"),
    (["--eps", "0.8", "--ratio", "5", "--b", "0"], "--b"),
    (["--eps", "0.8", "--ratio", "5", "--sigma", "-2"], "--sigma"),
    (["--gamma", "nan"], "--gamma"),
    (["--eps", "0.8"], "--ratio"),
    (["--eps", "abc", "--ratio", "5"], "--eps"),
    (["--unknown"], "--unknown"),
])
def test_bad_input_is_one_sentence_and_exit_2(argv, flag, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0]


def test_help_documents_defaults_and_inferred_values(capsys):
    with pytest.raises(SystemExit) as exit_info:
        check_theorem.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("--eps", "--ratio", "--gamma", "--sigma", "--theta1", "--eta", "--json", "default: 1.0, INFERRED",
                 "default: -0.5, INFERRED", "default: 19", "default: 1000.0"):
        assert text in out


def test_module_entry_point_single_point():
    proc = subprocess.run([sys.executable, "-m", "theory.check_theorem", "--eps", "0.8", "--ratio", "5", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert POINT_KEYS <= set(json.loads(proc.stdout))
    bad = subprocess.run([sys.executable, "-m", "theory.check_theorem", "--eps", "-1", "--ratio", "5"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_single_point_json_for_every_relaxation(capsys):
    from theory.derivation import RELAXATIONS
    code, out, _ = _run(["--eps", "0.8", "--ratio", "5", "--json", "--relaxation", "all"], capsys)
    data = json.loads(out)
    assert code == 0 and POINT_KEYS <= set(data)
    for name in RELAXATIONS:
        assert {f"grad_{name}", f"theta1_{name}", f"risk_{name}", f"{name}_worse"} <= set(data)
    assert data["risk_gap"] == data["risk_gap_coap"] > 0
    assert data["risk_optimal"] == data["risk_ibp"] == data["risk_at"] and data["risk_crown"] < data["risk_at"]


def test_grid_per_relaxation(capsys):
    code, out, _ = _run(["--json", "--relaxation", "all", *SMALL_GRID], capsys)
    data = json.loads(out)
    assert code == 0 and data["passed"] and data["grid"]["violations_in_region"] == 0
    found = data["relaxations"]
    assert found["crown"]["worse"] == 0 and found["crown"]["better"] == 20 and not found["crown"]["worse_region"]
    assert found["optimal"]["equal"] == found["ibp"]["equal"] == 20
    assert found["coap"]["worse"] > 0 and len(found["coap"]["risk_gap"]) == 4
    # Without COAP there is no theorem to violate: no COAP grid, the text names the relaxation's map.
    code, out, _ = _run(["--relaxation", "crown", *SMALL_GRID], capsys)
    assert code == 0 and "crown (" in out and "worse than AT after one step in 0 of 20" in out and "grid:" not in out
