"""Result records: the one format every experiment writes and every figure reads.

A record is one JSON object per finished run, stored as
`<out>/<name>-<config_hash>.json` and written atomically (temp file + rename),
so a killed run never leaves half a record.  A run whose record exists is
skipped unless forced.

Schema (version 1)::

    {
      "schema": 1,
      "kind": "train" | "spheres" | "linear" | "one_step" | ...,
      "name": "<short run name>",
      "config": {...},            # the run's frozen configuration (dataclasses.asdict);
                                  # train/spheres/linear configs carry dataset, method, norm, eps, seed
      "config_hash": "<10 hex>",  # of config and, for runs that choose one, device_type
      "device_type": "cpu" | "cuda",  # train records (absent where the run has no device choice)
      "seed": int,
      "versions": {"python", "torch", "numpy", "toolkit", "git"},
      "metrics": {...},           # realdata.evaluate's record: standard_error, robust_error, ...
      "history": [{"epoch": int, ...}, ...],
      "wall_time_s": float,
      "created": "<ISO-8601 UTC>"
    }
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path

from realdata.errors import UserError

SCHEMA = 1


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def config_hash(config, device_type: str | None = None) -> str:
    """A short, stable hash of a configuration (dataclass or dict) and, when given, the device
    type it runs on ("cpu", "cuda"): the same configuration gives different numbers on a CPU
    and a GPU, so their records and checkpoints must not stand in for each other."""
    payload = _jsonable(config) if device_type is None else {"config": _jsonable(config), "device_type": device_type}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def record_path(out_dir, name: str, config, device_type: str | None = None) -> Path:
    return Path(out_dir) / f"{name}-{config_hash(config, device_type)}.json"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import numpy
    import torch
    from importlib import metadata
    try:
        toolkit = metadata.version("certified-defences")
    except metadata.PackageNotFoundError:
        toolkit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "toolkit": toolkit, "git": _git_commit()}


def make_record(kind: str, name: str, config, seed: int, metrics: dict, history=None,
                wall_time_s: float | None = None, device_type: str | None = None, **extra) -> dict:
    """`device_type` (runs that choose a device) enters the hash and the record."""
    record = {
        "schema": SCHEMA, "kind": kind, "name": name, "config": _jsonable(config),
        "config_hash": config_hash(config, device_type), "seed": int(seed), "versions": versions(),
        "metrics": _jsonable(metrics), "history": _jsonable(history or []),
        "wall_time_s": wall_time_s,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device_type is not None:
        record["device_type"] = device_type
    record.update(_jsonable(extra))
    return record


def write_atomic(path, write, binary: bool = False) -> Path:
    """Call `write(handle)` on a temp file in the same folder, then rename it onto `path`.

    A kill mid-write leaves the previous file intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path, obj) -> Path:
    """Write JSON via a temp file in the same directory and an atomic rename."""
    def write(handle):
        json.dump(_jsonable(obj), handle, indent=1, sort_keys=False)
        handle.write("\n")
    return write_atomic(path, write)


def load_record(path) -> dict:
    """Read one record; a corrupt or foreign file raises a UserError that names it."""
    path = Path(path)
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise UserError(f"no record at {path}; run the experiment that writes it first.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"the record {path} is corrupt ({err.msg if hasattr(err, 'msg') else err}); "
                        "delete it and rerun the experiment (or rerun with --force).") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or "kind" not in record:
        raise UserError(f"{path} is not a result record of this toolkit (schema {SCHEMA}); move it out of the results directory.")
    return record


def load_records(directory, kind: str | None = None):
    """All readable records under `directory` (optionally of one kind) and a list of problems.

    Unreadable files do not stop the others from loading: each becomes one line in
    `problems` so callers (figures) can report it and carry on.
    """
    directory = Path(directory)
    records, problems = [], []
    if not directory.is_dir():
        return records, [f"results directory {directory} does not exist; run an experiment with --out {directory} first."]
    for path in sorted(directory.rglob("*.json")):
        try:
            rec = load_record(path)
        except UserError as err:
            problems.append(str(err))
            continue
        if kind is None or rec["kind"] == kind:
            rec["_path"] = str(path)
            records.append(rec)
    return records, problems


def existing_record(path) -> dict | None:
    """The finished record at `path`, or None if there is none.

    A corrupt file raises (via `load_record`) instead of being silently overwritten:
    finished results are never lost to a rerun.
    """
    return load_record(path) if Path(path).exists() else None
