"""`python -m figures.poster`: complete --help, one-sentence errors with exit 2, and a poster
drawn from records — or from no records, with every data panel explaining itself."""
import json
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
    for option in ("--results", "--out", "--run-missing", "--where", "--figures", "--no-poster", "--pages", "--dpi",
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
    (["--dpi", "0"], "between 1 and"),
    (["--theory-grid", "1"], "between 2 and"),
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
    # the fixture's certified slopes in ε are steeper than AT's: above in every cell
    assert "COAP's robust error is above AT's in 6 of 6 cells (CIFAR-10, Digits (8×8)); its gap to AT grows " \
           "with ε in 2 of 2 curves" in lines
    assert any(line.startswith("COAP's robust error is above AT's in 3 of 3 cells (spheres quick)") for line in lines)
    assert any(line.startswith("theorem map (4 cells)") for line in lines)


@pytest.mark.slow
def test_page_two_has_the_later_methods_and_the_2023_spheres(tmp_path, capsys, writers):
    """Later methods and the 2023 spheres go to page 2 only: page 1's figures stay the paper's."""
    from figures import error_grid, modern, spheres
    from figures.records import load_results
    results_dir = tmp_path / "results"
    writers["train"](results_dir, datasets=("digits",), methods=("at", "coap", "sabr"), seeds=(0,))
    writers["spheres"](results_dir, methods=("at", "coap"), seeds=(0,), epochs=2)
    for path in results_dir.glob("spheres-*.json"):  # half of them become the 2023 study's
        record = json.loads(path.read_text())
        if record["config"]["eps"] == 1.0:
            record["config"]["preset"] = "2023"
            path.write_text(json.dumps(record))
    results = load_results(results_dir)
    assert {r["config"]["method"] for r in error_grid.paper_records(results)} == {"at", "coap"}
    assert {r["config"]["method"] for r in modern.method_records(results)} == {"at", "sabr"}
    assert {r["config"]["preset"] for r in spheres.paper_records(results)} == {"quick"}
    assert {r["config"]["eps"] for r in spheres.later_records(results)} == {1.0}
    assert error_grid.heading(error_grid.paper_records(results)).count("COAP") == 1
    assert "SABR" not in error_grid.heading(error_grid.paper_records(results))
    assert modern.methods_heading(modern.method_records(results)).startswith("Since the paper: ")
    assert "SABR robust error above AT's in" in modern.methods_heading(modern.method_records(results))
    out = tmp_path / "out"
    assert run_main(poster.main, ["--results", str(results_dir), "--out", str(out), "--figures",
                                  "modern_methods,2023_l2", "--pages", "2"] + TINY) == 0
    assert "poster page 2: " in capsys.readouterr().out
    for name in ("poster-2.png", "poster-2.pdf", "modern_methods.png", "2023_l2.png"):
        assert (out / name).stat().st_size > 1000
    assert not (out / "poster.png").exists()


def test_bad_pages(tmp_path, capsys):
    assert run_main(poster.main, ["--pages", "3", "--out", str(tmp_path / "o")] + TINY) == 2
    assert "--pages takes" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_modern_figure_without_records_shows_the_command(tmp_path):
    from figures import modern
    from figures.records import Results
    from figures.spec import render
    rendered = render(modern.METHODS_SPEC, Results(tmp_path), tmp_path / "figs", dpi=20)
    assert rendered.summary == [f"modern methods: no records; run: {modern.methods_command(tmp_path)}"]


def test_page_two_draws_the_relaxations_beyond_coap(tmp_path):
    # the bottom row: every relaxation's gap map, the many-step trajectories and the tightness panels
    from figures import theorem
    from figures.records import Results
    from figures.style import new_figure
    fig = new_figure(20, 6)
    lines = poster.draw_theory_row(fig, Results(tmp_path), theorem.TheoremSetting(grid=3), fontsize=10)
    assert poster.THEORY_ROW == ("relaxation_gaps", "dynamics", "tightness")
    assert sum(line.startswith("one-step gap map, ") for line in lines) == 4
    assert any(line.startswith("150 GD steps, COAP") for line in lines)
    assert "Concentric spheres: no points" in lines and "Linear distribution: no points" in lines
