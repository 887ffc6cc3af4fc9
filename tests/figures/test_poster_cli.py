"""`python -m figures.poster`: complete --help, one-sentence errors with exit 2, and a poster
drawn from records — or from no records, with every data panel explaining itself."""
import subprocess
import sys

import pytest

from figures import poster
from realdata.errors import run_main

TINY = ["--theory-grid", "2", "--dpi", "20", "--poster-dpi", "8", "--quiet"]


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "figures.poster", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0
    for option in ("--results", "--out", "--run-missing", "--where", "--figures", "--no-poster", "--dpi",
                   "--poster-dpi", "--theory-grid", "--quiet", "quick"):
        assert option in out.stdout


def test_error_exit_is_two_with_one_sentence(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    out = subprocess.run([sys.executable, "-m", "figures.poster", "--out", str(a_file)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "is a file" in out.stderr


@pytest.mark.parametrize("argv, message", [
    (["--figures", "nonsense"], "unknown figure"),
    (["--where", "recipe"], "KEY=VALUE"),
    (["--dpi", "0"], "positive"),
    (["--theory-grid", "1"], "at least 2"),
])
def test_bad_arguments(argv, message, tmp_path, capsys):
    assert run_main(poster.main, argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.strip().count("\n") == 0


def test_results_path_that_is_a_file(tmp_path, capsys):
    a_file = tmp_path / "record.json"
    a_file.write_text("{}")
    assert run_main(poster.main, ["--results", str(a_file), "--out", str(tmp_path / "out")] + TINY) == 2
    assert "is a file" in capsys.readouterr().err


def test_poster_from_partial_and_damaged_records(tmp_path, capsys, writers):
    """One A0 composition covers both paths (it dominates this file's time): the digits
    column and the spheres panels are drawn from records, CIFAR-10 and the linear panel
    show their commands, and a corrupt record is a warning, not a failure."""
    results = tmp_path / "results"
    writers["train"](results, datasets=("digits",), methods=("at", "coap"), seeds=(0,))
    writers["spheres"](results, methods=("at", "coap"), seeds=(0,), epochs=2)
    (results / "broken.json").write_text("{")
    out = tmp_path / "out"
    assert run_main(poster.main, ["--results", str(results), "--out", str(out), "--figures", "relaxation"]
                    + TINY) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "broken.json" in captured.err
    assert "poster: " in captured.out
    for name in ("poster.png", "poster.pdf", "relaxation.png", "relaxation.pdf"):
        assert (out / name).stat().st_size > 1000


def test_key_numbers_come_from_the_records(results_dir):
    from figures.records import load_results
    from figures.theorem import TheoremSetting
    lines = poster.key_numbers(load_results(results_dir), TheoremSetting(grid=2))
    assert any(line.startswith("CIFAR-10") and "robust error" in line for line in lines)
    assert any(line.startswith("spheres robust error") for line in lines)
    assert any(line.startswith("theorem map (4 cells)") for line in lines)
