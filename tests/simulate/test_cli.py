"""Bad input gets one clear sentence and exit code 2, and writes nothing."""
import subprocess
import sys

import pytest

from realdata.errors import run_main
from simulate import linear, one_step, spheres

CASES = [
    (spheres, ["--eps", "-0.5"], "non-negative"),
    (spheres, ["--radii", "12,1"], "radii must increase"),
    (spheres, ["--margin", "0"], "margin must be positive"),
    (spheres, ["--k", "101"], "between 1 and the input dimension"),
    (spheres, ["--methods", "at,alpha-crown-typo"], "unknown method"),
    (linear, ["--methods", "at,nonsense"], "unknown method"),
    (one_step, ["--steps", "0"], "steps must be"),
    (spheres, ["--lrs", "0.1,fast"], "comma-separated numbers"),
    (spheres, ["--d", "0"], "positive integer"),
    (linear, ["--eps", "-1"], "non-negative"),
    (linear, ["--sweep", "--n", "70"], "n = 50 and n = 10000"),
    (one_step, ["--eps", "-0.1"], "non-negative"),
    (one_step, ["--b", "0.5"], "b < 0"),
    (one_step, ["--n", "1"], "at least 2"),
    # each sentence names what the user typed: their n, their flag, whole numbers as integers
    (one_step, ["--n", "200", "--batches", "1"], "got n=200, batches=1"),
    (spheres, ["--radii", "1,1e7"], "--radii must lie between 0 and 1e+06, got 1e+07"),
    (linear, ["--d", "1000000000000"], "--d must lie between 1 and 10000000, got 1000000000000."),
]


@pytest.mark.parametrize("module, argv, phrase", CASES, ids=[f"{m.__name__}{' '.join(a)}" for m, a, _ in CASES])
def test_bad_input_exits_2_with_a_sentence(tmp_path, capsys, module, argv, phrase):
    assert run_main(module.main, argv + ["--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and phrase in err
    assert not any(tmp_path.iterdir())


def test_exit_code_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "simulate.spheres", "--k", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "k" in done.stderr and not any(tmp_path.iterdir())


@pytest.mark.parametrize("module", [spheres, linear, one_step])
def test_help_is_complete(capsys, module):
    with pytest.raises(SystemExit) as exit_:
        module.build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--out" in text and "--force" in text and "--quiet" in text and "INFERRED" in text


def test_command_lines_reach_the_same_records_as_the_quick_configs():
    # figures prints these command lines for missing panels and runs quick_configs() itself;
    # both must name the same configurations (same hashes, so the same record files)
    from realdata.results import config_hash
    from realdata.synthetic import quick_configs

    args = spheres.build_parser().parse_args(["--preset", "quick", "--methods", "st,at,coap", "--eps", "0.1,0.5,1",
                                              "--per-epoch"])
    assert ({config_hash(c) for c in spheres.configs_from_args(args)}
            == {config_hash(c) for c in quick_configs("spheres")})
    args = linear.build_parser().parse_args(["--preset", "quick", "--n", "50", "--methods", "st,at,coap",
                                             "--eps", "3,4.5,5.5"])
    assert ({config_hash(c) for c in linear.configs_from_args(args)}
            == {config_hash(c) for c in quick_configs("linear")})


def test_a_value_that_begins_with_a_dash_gets_the_fix(tmp_path, capsys):
    # argparse reads -inf as a flag; the sentence says how to pass it, with one full stop
    assert run_main(spheres.main, ["--eps", "-inf", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--eps=VALUE" in err and ".;" not in err and len(err.splitlines()) == 1
