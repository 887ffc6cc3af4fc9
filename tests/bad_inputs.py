"""The table of bad inputs every command must refuse: exit 2, one line on stderr, no traceback.

`tests/test_bad_inputs.py` runs it in-process; run this file to see every case's outcome on
any checkout (used to record the behaviour before and after issue 14's hardening)::

    python tests/bad_inputs.py [--repo PATH] [--timeout 30] [--only CLASS]

Each case is (class, command, extra argv, setup).  The extra argv is appended to the
command's cheap *baseline* (argparse keeps the last value), so a case changes one thing.
`{tmp}` is a fresh folder, `{file}` a regular file in it.  A setup prepares damaged state
first (see `SETUPS`): it runs the baseline once for real, then damages what it wrote.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: A valid, cheap invocation of each command (seconds on a CPU).
BASELINES = {
    "realdata.train": ["--dataset", "digits", "--method", "st", "--epochs", "1", "--width", "8", "--eval-bound", "none",
                       "--eval-steps", "2", "--quiet", "--out", "{tmp}/out"],
    "realdata.sweep": ["--dataset", "digits", "--methods", "st", "--eps", "0.1", "--epochs", "1", "--width", "8",
                       "--eval-bound", "none", "--eval-steps", "2", "--quiet", "--out", "{tmp}/out"],
    "simulate.one_step": ["--d", "10", "--n", "200", "--batches", "2", "--n-test", "10", "--quiet", "--out",
                          "{tmp}/out"],
    "simulate.linear": ["--preset", "quick", "--n", "20", "--d", "5", "--epochs", "2", "--n-test", "20", "--methods",
                        "st", "--lrs", "0.1", "--quiet", "--out", "{tmp}/out"],
    "simulate.spheres": ["--preset", "quick", "--d", "3", "--n", "20", "--epochs", "10", "--n-test", "20", "--methods",
                         "st", "--lrs", "0.05", "--eval-steps", "2", "--eval-restarts", "1", "--quiet", "--out",
                         "{tmp}/out"],
    "theory.check_theorem": ["--eps", "0.8", "--ratio", "5"],
    "figures.poster": ["--results", "{tmp}/res", "--out", "{tmp}/fig", "--figures", "linear", "--no-poster", "--quiet"],
}

T, S, O, L, P, C, F = BASELINES  # short names for the table below
SIMULATE = (O, L, P)
TRAINERS = (T, S)


def _each(commands, argv, cls, setup=None):
    return [(cls, c, list(argv), setup) for c in commands]


CASES = [
    # --- unknown flags and missing values
    *_each(BASELINES, ["--bogus"], "unknown flag"),
    *_each((T, S, O, L, P, C), ["--eps"], "missing value"),
    # --- non-finite numbers
    *_each((T, S, O, L, P, C), ["--eps", "nan"], "non-finite"),
    *_each((T, S, O, L, P, C), ["--eps", "inf"], "non-finite"),
    *_each(TRAINERS, ["--lr", "nan"], "non-finite"),
    *_each(TRAINERS, ["--lr", "inf"], "non-finite"),
    *_each(TRAINERS, ["--width", "nan"], "non-finite"),
    *_each(TRAINERS, ["--grad-clip", "inf"], "non-finite"),
    *_each((O, C), ["--gamma", "nan"], "non-finite"),
    *_each((L, P), ["--lrs", "0.1,nan"], "non-finite"),
    *_each((L, P), ["--lrs", "inf"], "non-finite"),
    (("non-finite", L, ["--gamma", "inf"], None)),
    (("non-finite", P, ["--margin", "nan"], None)),
    (("non-finite", P, ["--radii", "1,inf"], None)),
    (("non-finite", O, ["--theta1", "inf"], None)),
    (("non-finite", C, ["--ratio", "inf"], None)),
    (("non-finite", C, ["--eps", "-inf"], None)),
    # --- out of range (sign, zero, bounds)
    *_each((T, S, O, L, P, C), ["--eps", "-1"], "out of range"),
    *_each((T, S, L, P), ["--epochs", "0"], "out of range"),
    *_each((T, S, L, P), ["--batch-size", "-5"], "out of range"),
    *_each(TRAINERS, ["--lr", "0"], "out of range"),
    *_each(TRAINERS, ["--momentum", "-1"], "out of range"),
    *_each(TRAINERS, ["--test-size", "0"], "out of range"),
    *_each((O, L, P), ["--d", "0"], "out of range"),
    *_each((L, P), ["--lrs", "-0.1"], "out of range"),
    *_each((L, P), ["--n", "0"], "out of range"),
    (("out of range", O, ["--n", "1"], None)),
    (("out of range", O, ["--batches", "1"], None)),
    (("out of range", O, ["--b", "1"], None)),
    (("out of range", P, ["--k", "0"], None)),
    (("out of range", P, ["--k", "99"], None)),
    (("out of range", P, ["--radii", "3,1"], None)),
    (("out of range", C, ["--ratio", "0"], None)),
    (("out of range", C, ["--eps-steps", "0"], None)),
    (("out of range", F, ["--dpi", "0"], None)),
    (("out of range", F, ["--theory-grid", "1"], None)),
    (("out of range", T, ["--stop-after", "0"], None)),
    # --- too large: overflow, memory, or an attack that cannot move a point
    *_each((T, S), ["--epochs", "1" + "0" * 30], "too large"),
    *_each((T, S), ["--lr", "1e308"], "too large"),
    *_each((T, S), ["--eps", "1e300"], "too large"),
    *_each((T, S), ["--width", "1e12"], "too large"),
    *_each((T, S), ["--eval-steps", "1" + "0" * 20], "too large"),
    *_each((S, O, L, P), ["--seeds", "1" + "0" * 25], "too large"),
    (("too large", T, ["--seed", "1" + "0" * 25], None)),
    *_each((O, L, P), ["--d", "1" + "0" * 12], "too large"),
    *_each((L, P), ["--epochs", "1" + "0" * 30], "too large"),
    *_each((L, P), ["--eps", "1e300"], "too large"),
    (("too large", O, ["--n", "1" + "0" * 15], None)),
    (("too large", O, ["--eps", "1e308"], None)),
    (("too large", L, ["--gamma", "1e308"], None)),
    (("too large", P, ["--n-test", "1" + "0" * 15], None)),
    (("too large", P, ["--radii", "1,1e7"], None)),
    (("too large", P, ["--rank-restarts", "100000"], None)),
    (("too large", C, ["--eps-steps", "1" + "0" * 12], None)),
    (("too large", F, ["--theory-grid", "1" + "0" * 9], None)),
    (("too large", F, ["--dpi", "1" + "0" * 9], None)),
    # --- malformed numbers and lists
    *_each((T, S, O, L, P, C), ["--eps", "abc"], "malformed"),
    *_each((T, S, O, L, P), ["--eps", "1/0"], "malformed"),
    *_each((T, S, O, L, P), ["--eps", ""], "malformed"),
    *_each((S, L, P), ["--eps", "0.1,,x"], "malformed"),
    *_each((S, O, L, P), ["--seeds", "a"], "malformed"),
    *_each((S, O, L, P), ["--seeds", ","], "malformed"),
    *_each((S, O, L, P), ["--seeds", "1.5"], "malformed"),
    *_each((L, P), ["--lrs", ""], "malformed"),
    *_each((L, P), ["--lrs", "0.1,x"], "malformed"),
    *_each((S, L, P), ["--methods", ""], "malformed"),
    *_each(TRAINERS, ["--data-params", "foo"], "malformed"),
    *_each(TRAINERS, ["--lr-milestones", "a"], "malformed"),
    (("malformed", P, ["--radii", "1"], None)),
    (("malformed", L, ["--n", "x"], None)),
    (("malformed", O, ["--n", "1e3x"], None)),
    (("malformed", F, ["--where", "x"], None)),
    (("malformed", F, ["--figures", ","], None)),
    (("malformed", F, ["--datasets", ""], None)),
    (("malformed", T, ["--epochs", "2.5"], None)),
    # --- unknown choices
    *_each((T,), ["--method", "foo"], "bad choice"),
    *_each((S, L, P), ["--methods", "st,foo"], "bad choice"),
    *_each(TRAINERS, ["--dataset", "foo"], "bad choice"),
    *_each(TRAINERS, ["--norm", "foo"], "bad choice"),
    *_each(TRAINERS, ["--arch", "foo"], "bad choice"),
    *_each(TRAINERS, ["--optimizer", "foo"], "bad choice"),
    *_each(TRAINERS, ["--eval-attack", "foo"], "bad choice"),
    *_each(TRAINERS, ["--eval-bound", "foo"], "bad choice"),
    *_each(TRAINERS, ["--recipe", "foo"], "bad choice"),
    *_each(TRAINERS, ["--device", "tpu"], "bad choice"),
    *_each((L, P), ["--preset", "foo"], "bad choice"),
    (("bad choice", P, ["--norm", "l3"], None)),
    (("bad choice", L, ["--at-attack", "foo"], None)),
    (("bad choice", F, ["--figures", "nope"], None)),
    (("bad choice", F, ["--datasets", "foo"], None)),
    (("bad choice", F, ["--run-missing", "slow"], None)),
    # --- paths
    *_each((T, S, O, L, P, F), ["--out", "{file}"], "output path"),
    *_each((T, S, O, L, P, F), ["--out", "{file}/sub"], "output path"),
    *_each((T, S, O, L, P, F), ["--out", "/proc/no-such-dir/out"], "output path"),
    *_each((T, S, O, L, P, F), ["--out", ""], "output path"),
    *_each(TRAINERS, ["--data-dir", "{tmp}/missing"], "input path"),
    *_each(TRAINERS, ["--data-dir", "{file}"], "input path"),
    (("input path", F, ["--results", "{file}"], None)),
    # --- damaged files where a command reads or writes
    *_each((T, S, O, L, P), [], "damaged file", "corrupt_record"),
    *_each((T, S, O, L, P), [], "damaged file", "directory_at_record"),
    *_each((T, S, O, L, P), [], "damaged file", "partial_record"),
    *_each((T, S), [], "damaged file", "damaged_checkpoint"),
    (("damaged file", P, ["--n", "1000"], "damaged_checkpoint")),
    (("damaged file", L, ["--n", "1000"], "damaged_checkpoint")),
    # the silent wrong result: one rate's checkpoint damaged made the search pick another rate
    (("damaged file", P, ["--n", "1000", "--lrs", "0.05,0.01"], "damaged_first_checkpoint")),
    (("damaged file", L, ["--n", "1000", "--lrs", "0.1,0.01"], "damaged_first_checkpoint")),
    (("damaged file", T, ["--dataset", "cifar10", "--data-dir", "{tmp}/cifar", "--arch", "mlp"], "damaged_dataset")),
    # --- ε as a fraction (must be accepted: a wrong exit here is a bug, not a refusal)
]

#: Inputs that are valid and must be accepted (exit 0); a refusal is a bug.
ACCEPTED = [
    ("fraction eps", C, ["--eps", "4/5"]),
    ("fraction eps", O, ["--eps", "4/5"]),
    ("fraction eps", L, ["--eps", "9/2"]),
    ("fraction eps", P, ["--eps", "1/2"]),
    ("fraction eps", T, ["--eps", "1/4"]),
]


def _records(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.json") if not p.name.startswith("."))


def _damage(kind: str, out: Path, baseline_run) -> None:
    """Run the baseline for real, then damage what it wrote."""
    baseline_run()
    records = _records(out)
    assert records, f"the baseline wrote no record under {out}"
    record = records[0]
    if kind == "corrupt_record":
        record.write_text('{"schema": 1, "kind": "tr')
    elif kind == "directory_at_record":
        record.unlink()
        (record / "inner").mkdir(parents=True)
    elif kind == "partial_record":
        record.write_text(json.dumps({"schema": 1, "kind": "train", "name": "x", "config": {}}))
    elif kind in ("damaged_checkpoint", "damaged_first_checkpoint"):
        data = json.loads(record.read_text())
        rows = data.get("lr_search", [])
        lrs = [row["lr"] for row in rows if "skipped" not in row]  # a skipped rate has no checkpoint
        record.unlink()
        ckpts = [record.with_suffix(".ckpt")] if not lrs else [
            record.with_name(f"{record.stem}-lr{lr:g}.ckpt") for lr in lrs]
        if kind == "damaged_first_checkpoint":
            # the rates the search could fall back on need not have been trained: resuming must fail first
            assert len(rows) > 1, "this case needs a learning-rate search"
            ckpts = ckpts[:1]
        for ckpt in ckpts:
            ckpt.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    else:
        raise ValueError(kind)


def damaged_dataset(tmp: Path) -> None:
    folder = tmp / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    # every file the loader looks for is present, so it gets as far as unpickling them
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"\x80\x04not a pickle")


SETUPS = ("corrupt_record", "directory_at_record", "partial_record", "damaged_checkpoint", "damaged_first_checkpoint",
          "damaged_dataset")


def expand(argv, tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)).replace("{file}", str(tmp / "afile")) for a in argv]


def prepare(tmp: Path) -> None:
    (tmp / "afile").write_text("a regular file\n")


def case_id(case) -> str:
    cls, command, argv, setup = case
    return f"{command} {' '.join(argv)} {setup or ''}".strip()


# --------------------------------------------------------------------------- the report script

def _run(repo: Path, command: str, argv: list[str], timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(repo))
    began = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", command, *argv], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "lines": 0, "traceback": False, "first": f"still running after {timeout:.0f}s",
                "s": timeout}
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    return {"rc": proc.returncode, "lines": len(err), "traceback": "Traceback" in proc.stderr,
            "first": (err[-1] if "Traceback" in proc.stderr else err[0]) if err else "",
            "s": round(time.perf_counter() - began, 1)}


def run_case(repo: Path, case, timeout: float) -> dict:
    cls, command, extra, setup = case
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        prepare(tmp)
        argv = expand(BASELINES[command] + extra, tmp)
        if setup == "damaged_dataset":
            damaged_dataset(tmp)
        elif setup:
            try:
                _damage(setup, tmp / "out", lambda: _run(repo, command, argv, 4 * timeout))
            except AssertionError as err:
                return {"rc": "setup", "lines": 0, "traceback": False, "first": str(err), "s": 0, "touched": False}
        before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*")}
        result = _run(repo, command, argv, timeout)
        after = {p: p.stat().st_mtime_ns for p in tmp.rglob("*")}
        result["touched"] = before != after
    return result


def verdict(result: dict, expect_ok: bool = False) -> str:
    if expect_ok:
        return "ok" if result["rc"] == 0 else "WRONG"
    if result["rc"] == 2 and result["lines"] == 1 and not result["traceback"]:
        return "ok" + (" (wrote files)" if result["touched"] else "")
    if result["traceback"]:
        return "TRACEBACK"
    if result["rc"] == 0:
        return "ACCEPTED"
    return f"rc={result['rc']} lines={result['lines']}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--only", default=None, help="run only this class")
    p.add_argument("--start", type=int, default=0, help="skip the first START cases")
    p.add_argument("--json", default=None, help="also write every result to this JSON file")
    args = p.parse_args(argv)
    repo = Path(args.repo)
    rows = []
    for case in CASES[args.start:]:
        if args.only and case[0] != args.only:
            continue
        result = run_case(repo, case, args.timeout)
        rows.append({"class": case[0], "case": case_id(case), "verdict": verdict(result), **result})
        print(f"{rows[-1]['verdict']:<22} {case[0]:<13} {case_id(case)}  | {result['first'][:150]}", flush=True)
    for cls, command, extra in ACCEPTED:
        if args.only and cls != args.only:
            continue
        result = run_case(repo, (cls, command, extra, None), args.timeout)
        rows.append({"class": cls, "case": f"{command} {' '.join(extra)}", "verdict": verdict(result, True), **result})
        print(f"{rows[-1]['verdict']:<22} {cls:<13} {command} {' '.join(extra)}  | {result['first'][:150]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    bad = sum(not r["verdict"].startswith("ok") for r in rows)
    print(f"{len(rows)} cases, {len(rows) - bad} ok, {bad} not")
    return 0


if __name__ == "__main__":
    sys.exit(main())
