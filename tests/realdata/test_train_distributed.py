"""torchrun: two gloo processes on the CPU train the same run as one process.

Tolerance: the two-process update sums the two shares' gradients in another order than
one process does, so parameters differ by float32 rounding (~1e-7 relative per step).
Over a few epochs that keeps the per-epoch training losses within 1e-4 (relative) and
moves at most one test point across the decision boundary (errors within 1/n_test).
"""
import json
import os
import subprocess
import sys

import pytest

from realdata.recipes import make_config
from realdata.train import train

# uneven shares on purpose: 190 points in batches of 45 end with a batch of 10 (5 + 5),
# and the 45-point batches split 23 + 22
# close shells (radii 1 and 2) so that every error is strictly between 0 and 1 and the
# comparison has something to compare
DATA = {"d": 10, "r1": 2, "n": 190, "n_test": 60}
ARGS = ["--dataset", "spheres", "--method", "coap", "--eps", "0.4", "--epochs", "4", "--batch-size", "45",
        "--width", "16", "--data-params", "d=10,r1=2,n=190,n_test=60", "--eval-steps", "5", "--ramp-epochs", "1",
        "--optimizer", "adam", "--lr", "0.01", "--device", "cpu", "--quiet", "--json"]


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    config = make_config("spheres", "coap", eps=0.4, epochs=4, batch_size=45, width=16, data_params=DATA,
                         eval_steps=5, ramp_epochs=1.0, optimizer="adam", lr=0.01)
    single = train(config, out=tmp_path / "one", progress=False)
    assert all(0 < single["metrics"][k] < 1 for k in ("standard_error", "robust_error", "certified_error"))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "realdata.train", *ARGS, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    double = json.loads(proc.stdout)  # only rank 0 prints

    assert double["config_hash"] == single["config_hash"] and double["world_size"] == 2
    assert len(list((tmp_path / "two").glob("*.json"))) == 1 and not list((tmp_path / "two").glob("*.ckpt"))
    for a, b in zip(single["history"], double["history"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["train_error"] == pytest.approx(a["train_error"], abs=1.5 / DATA["n"])
    tol = 1.0 / DATA["n_test"] + 1e-9
    for key in ("standard_error", "robust_error", "certified_error"):
        assert abs(double["metrics"][key] - single["metrics"][key]) <= tol, key
