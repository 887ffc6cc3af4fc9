"""benchmarks.training: bad flags exit 2 before any measurement; a small measurement trains
both sides for real and reports each repeat's ratio beside the best-of ratio."""
import json

import pytest
import torch

from benchmarks import training
from realdata.errors import run_main


@pytest.mark.parametrize("argv", [["--proj", "abc"], ["--proj", "0"], ["--threads", "0"], ["--images", "0"],
                                  ["--batch-size", "-2"], ["--repeats", "0"], ["--eps", "-1"]])
def test_bad_input_exits_2_before_measuring(argv, capsys, monkeypatch):
    monkeypatch.setattr(training, "measure", lambda *a, **k: pytest.fail("measured despite bad input"))
    assert run_main(training.main, argv) == 2
    assert "error:" in capsys.readouterr().err


def test_a_small_measurement_reports_every_repeat(capsys):
    threads = torch.get_num_threads()
    try:
        argv = ["--dataset", "digits", "--arch", "mlp", "--images", "8", "--batch-size", "4", "--proj", "3",
                "--repeats", "2", "--threads", "1", "--json"]
        assert run_main(training.main, argv) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(capsys.readouterr().out)
    assert result["threads"] == 1 and result["proj"] == 3 and len(result["ratio_per_repeat"]) == 2
    # the headline pairs each side's fastest epoch; every repeat's own pair is a real, finite ratio
    assert result["ratio"] == pytest.approx(result["reference_s"] / result["ours_s"])
    assert all(0 < r < float("inf") for r in result["ratio_per_repeat"])
