"""Every figure renders from small records (PNG and PDF, non-empty), shows the numbers of its
records, and degrades to an explanation when records are missing or damaged."""
import json
import re
import shutil

import numpy as np
import pytest

from figures import error_grid, linear, relaxation, spheres, theorem
from figures.commands import linear_command, spheres_command, train_command
from figures.records import Results, load_results
from figures.spec import render

DPI = 30  # files only need to exist and be valid; low DPI keeps the suite fast
SPECS = {"error_grid": error_grid.SPEC, "spheres": spheres.SPEC, "linear": linear.SPEC,
         "theorem": theorem.spec(theorem.TheoremSetting(grid=3)), "relaxation": relaxation.SPEC}


def assert_valid_files(paths):
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2000


@pytest.fixture(scope="module")
def rendered(results_dir, tmp_path_factory):
    """Every figure drawn once from the full records (rendering dominates the suite's time)."""
    out, results = tmp_path_factory.mktemp("figures"), load_results(results_dir)
    return {name: render(spec, results, out, dpi=DPI) for name, spec in SPECS.items()}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_figure_renders_png_and_pdf(name, rendered):
    assert [p.name for p in rendered[name].paths] == [f"{name}.png", f"{name}.pdf"]
    assert_valid_files(rendered[name].paths)


def test_error_grid_summary_is_the_records_gap(results_dir, rendered):
    raw = [json.loads(p.read_text()) for p in results_dir.glob("*.json")]

    def mean(method):
        return np.mean([r["metrics"]["robust_error"] for r in raw if r["kind"] == "train"
                        and r["config"]["dataset"] == "digits" and r["config"]["method"] == method
                        and r["config"]["eps"] == 2.0])

    summary = rendered["error_grid"].summary
    line = [ln for ln in summary if ln.startswith("Digits") and "robust error at ε=2" in ln][0]
    gap = float(re.search(r"COAP [\d.]+ \(([+-][\d.]+)\)", line).group(1))
    assert gap == pytest.approx(mean("coap") - mean("at"), abs=1e-3)
    assert len([ln for ln in summary if ln.startswith("CIFAR-10")]) == len(error_grid.METRICS)


@pytest.mark.parametrize("name, command", [("error_grid", lambda out: train_command("cifar10", out)),
                                           ("spheres", spheres_command), ("linear", linear_command)])
def test_missing_records_show_the_command(name, command, tmp_path):
    rendered = render(SPECS[name], Results(tmp_path), tmp_path, dpi=DPI)
    assert_valid_files(rendered.paths)
    assert any(command(tmp_path) in line for line in rendered.summary)


def test_corrupt_record_leaves_the_others_drawn(results_dir, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results_dir, copy)
    victim = sorted(copy.glob("spheres-coap-*.json"))[0]
    victim.write_text(victim.read_text()[:40])
    results = load_results(copy)
    assert any(victim.name in p for p in results.problems)
    chosen, _ = spheres.main_setting(results.of("spheres"))
    summary = spheres.summarize(chosen, spheres.large_eps(chosen))
    assert any("COAP" in line for line in summary)


def test_spheres_without_history_still_draws(tmp_path, writers):
    out = tmp_path / "results"
    writers["spheres"](out, epochs=0)
    rendered = render(spheres.SPEC, load_results(out), tmp_path, dpi=DPI)
    assert_valid_files(rendered.paths)
    assert not any("per epoch" in line for line in rendered.summary)


def test_spheres_shows_one_setting_and_says_so(results_dir, tmp_path, writers):
    out = tmp_path / "results"
    shutil.copytree(results_dir, out)
    rec = json.loads(sorted(out.glob("spheres-at-*.json"))[0].read_text())
    writers["write"](out, "spheres", "spheres-at-k1", dict(rec["config"], k=1, norm="directions"), rec["metrics"])
    chosen, notes = spheres.main_setting(load_results(out).of("spheres"))
    assert all(r["config"]["k"] is None for r in chosen)
    assert len(notes) == 1 and "1 records of other settings" in notes[0]


def test_relaxation_margins_match_the_theory():
    """COAP's bound is below the exact worst case only on the unstable set; the triangle LP
    optimum equals the exact worst case there (docs/PAPER.md §2)."""
    ex = relaxation.EXAMPLE
    lo, hi = -ex["theta1"] * (ex["gamma"] + ex["eps"]), -ex["theta1"] * (ex["gamma"] - ex["eps"])
    z = np.linspace(lo - 1, hi + 1, 201)
    exact, lp, coap = relaxation.margins_for_positive_class(z, **ex)
    unstable = (z > lo) & (z < hi)
    assert np.all(coap[unstable] < exact[unstable])
    np.testing.assert_allclose(coap[~unstable], exact[~unstable], atol=1e-12)
    np.testing.assert_allclose(lp, exact, atol=1e-9)
    with pytest.raises(ValueError):
        relaxation.coap_slope(0.5, 1.0)


def test_theorem_summary_counts_the_map(rendered):
    line = rendered["theorem"].summary[0]
    grid = theorem.risk_gap_map(theorem.TheoremSetting(grid=3))
    assert f"({grid.gap.size} cells)" in line and f"{int(grid.in_region.sum())} in the theorem's region" in line


def test_one_step_records_are_placed_on_the_map(tmp_path, writers):
    setting = theorem.TheoremSetting(grid=3)
    base = {"eps": 0.8, "gamma": 1.0, "sigma": 1.0, "a": 1.0, "b": -0.5, "eta": 1.0, "d": 200, "n": 20000, "seed": 0}
    metrics = {"ratio": 14.2, "theta1_init": 0.7, "risk_gap": 1.1e-4, "risk_gap_se": 5e-6, "risk_gap_pop": 1.2e-4}
    writers["write"](tmp_path, "one_step", "one_step-in", base, metrics)
    writers["write"](tmp_path, "one_step", "one_step-other-gamma", dict(base, gamma=6.0), metrics)
    rows = theorem.one_step_rows(load_results(tmp_path).of(theorem.KIND), setting)
    assert len(rows) == 1 and rows[0]["eps_ratio"] == 0.8 and rows[0]["ratio"] == 14.2
    lines = theorem.summarize(theorem.risk_gap_map(setting), theorem.gradient_curves(setting), rows)
    assert "one_step n=20000 at ε/γ=0.8, r=14.2: simulated risk gap COAP − AT +0.00011 ± 5e-06" in lines[-1]


def test_theory_beyond_coap_figures(tmp_path):
    """Per-relaxation gap maps and many-step trajectories: the summaries state the theory's verdicts."""
    from figures import beyond_coap
    setting = theorem.TheoremSetting(grid=3)
    maps = render(beyond_coap.gap_maps_spec(setting), Results(tmp_path), tmp_path, dpi=DPI)
    assert_valid_files(maps.paths)
    text = "\n".join(maps.summary)
    assert "CROWN: worse than AT in 0" in text and "IBP: identical to AT" in text and "(= LP): identical" in text
    dyn = render(beyond_coap.dynamics_spec(setting, steps=20), Results(tmp_path), tmp_path, dpi=DPI)
    assert_valid_files(dyn.paths)
    coap = next(line for line in dyn.summary if ", COAP:" in line)
    assert "stationary point" in coap and "grows without bound" in dyn.summary[0]


def test_harm_against_tightness_pairs_each_run_with_at(tmp_path, writers):
    from figures import tightness
    base = {"kind": "linear", "seed": 0, "history": []}
    records = []
    for method, robust, gap in (("at", 0.2, None), ("coap", 0.35, 1.5), ("crown", 0.3, 0.7)):
        for seed in (0, 1):
            records.append({**base, "seed": seed,
                            "config": {"n": 50, "d": 20, "gamma": 6, "eps": 4.5, "seed": seed, "method": method},
                            "metrics": {"robust_error": robust + 0.01 * seed, "tightness": gap}})
    points = tightness.harm_points(records, tightness.EXPERIMENTS["linear"][0])
    assert sorted(points) == [("at", 4.5), ("coap", 4.5), ("crown", 4.5)]
    assert points[("coap", 4.5)] == [(1.5, pytest.approx(0.15)), (1.5, pytest.approx(0.15))]
    assert points[("at", 4.5)][0] == (0.0, 0.0)
    empty = render(tightness.SPEC, Results(tmp_path), tmp_path, dpi=DPI)
    assert empty.summary == ["Concentric spheres: no points", "Linear distribution: no points"]
    assert "--methods at,coap" in tightness.command("linear") and "crown" in tightness.command("linear")
