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
from realdata.validate import check_fields

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
    # the CPU threads the run used: its wall and CPU times depend on them
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "toolkit": toolkit, "git": _git_commit(), "threads": torch.get_num_threads()}


def make_record(kind: str, name: str, config, seed: int, metrics: dict, history=None,
                wall_time_s: float | None = None, device_type: str | None = None, **extra) -> dict:
    """`device_type` (runs that choose a device) enters the hash and the record."""
    if dataclasses.is_dataclass(config):
        check_fields(config)  # no record is ever written with a non-finite configuration value
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


def _umask() -> int:
    """The process's umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, write, binary: bool = False) -> Path:
    """Call `write(handle)` on a temp file in the same folder, then rename it onto `path`.

    A kill mid-write leaves the previous file intact, never a truncated one.  The file gets
    the mode any new file gets (0666 less the umask), not the temp file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
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


def write_record(path, record: dict) -> Path:
    """Write a record, refusing to replace anything but a record of the same configuration
    (a foreign or damaged file there is someone's data, or evidence of a bug)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        old = load_record(path)
        if old.get("config_hash") != record.get("config_hash"):
            raise UserError(f"{path} holds the record of another configuration; move it away and rerun.")
    return write_json_atomic(path, record)


#: What every record has, and the type of each (schema 1).
REQUIRED = {"schema": int, "kind": str, "name": str, "config": dict, "config_hash": str, "metrics": dict,
            "history": list}

#: Metrics that, where present, are error rates: a number in [0, 1] or None.
RATES = ("standard_error", "robust_error", "certified_error", "train_error")


def schema_problem(record) -> str | None:
    """Why `record` is not a complete schema-1 record (None if it is one)."""
    if not isinstance(record, dict):
        return "it is not a JSON object"
    if record.get("schema") != SCHEMA:
        return f"its schema is {record.get('schema')!r}, not {SCHEMA}"
    for key, kind in REQUIRED.items():
        if not isinstance(record.get(key), kind):
            return f"its {key!r} is {'missing' if key not in record else type(record[key]).__name__}, not {kind.__name__}"
    for key in RATES:
        value = record["metrics"].get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 1):
            return f"its metric {key!r} is {value!r}, not a rate in [0, 1] or null"
    return None


def load_record(path) -> dict:
    """Read one record; a corrupt, partial or foreign file, or a folder where a record should be,
    raises a UserError that names it."""
    path = Path(path)
    fix = "move it out of the results folder and rerun the experiment that writes it"
    if path.is_dir():
        raise UserError(f"{path} is a folder where a record should be; {fix}.")
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file where a record should be; {fix}.")
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise UserError(f"no record at {path}; run the experiment that writes it first.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"the record {path} is corrupt ({err.msg if hasattr(err, 'msg') else err}); {fix}.") from None
    except OSError as err:
        raise UserError(f"cannot read the record {path} ({err.strerror or err}); {fix}.") from None
    problem = schema_problem(record)
    if problem:
        raise UserError(f"{path} is not a result record of this toolkit ({problem}); {fix}.")
    return record


def load_records(directory, kind: str | None = None):
    """All readable records under `directory` (optionally of one kind) and a list of problems.

    Unreadable, partial or foreign files do not stop the others from loading: each becomes
    one line in `problems` naming the file, so callers (figures) can report it and carry on.
    """
    directory = Path(directory)
    records, problems = [], []
    if not directory.is_dir():
        return records, [f"results directory {directory} does not exist; run an experiment with --out {directory} first."]
    for path in sorted(directory.rglob("*.json")):
        try:
            rec = load_record(path)
        except UserError as err:
            problems.append(f"skipped: {err}")
            continue
        if kind is None or rec["kind"] == kind:
            rec["_path"] = str(path)
            records.append(rec)
    return records, problems


def existing_record(path, force: bool = False) -> dict | None:
    """The finished record at `path`, or None if there is none (or `force` recomputes it).

    Whatever is at `path` is checked either way: a damaged file raises (via `load_record`)
    before any work instead of being silently overwritten, so results are never lost to a rerun.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return None
    record = load_record(path)
    return None if force else record
