"""Tiny ImageNet: the standard ``tiny-imagenet-200/`` folder, decoded once and cached beside it.

Layout (as distributed): ``wnids.txt`` (one WordNet id per line; line i is class i),
``train/<wnid>/images/*.JPEG`` (500 per class) and ``val/images/*.JPEG`` labelled by
``val/val_annotations.txt`` (file, wnid, box).  The validation split is the test set, as in
every certified-training paper (the official test split has no labels).  Images are 64×64 RGB;
the few greyscale JPEGs are expanded to three channels.

Decoding 110 000 JPEGs takes minutes, so the arrays are written once, uncompressed, to
``<folder>/.decoded/`` (or, when the data folder is read-only, to the user cache) with a
manifest holding a fingerprint of the source files and a SHA-256 of every array.  A later
load checks both: a cache of other files or with damaged arrays is rebuilt, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError

FOLDER = "tiny-imagenet-200"
ENV = "TINYIMAGENET_DIR"
SIZE = 64
NUM_CLASSES = 200
# Per-channel statistics of the training set, as auto_LiRPA, FAST-IBP and CTBench normalise it.
MEAN = (0.4802, 0.4481, 0.3975)
STD = (0.2302, 0.2265, 0.2262)
CACHE = ".decoded"
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
FORMAT = 1  # bump when the cached layout changes


def find_folder(data_dir=None) -> Path:
    """`data_dir`, else $TINYIMAGENET_DIR: the tiny-imagenet-200 folder itself or its parent."""
    if data_dir is not None:
        where, origin = Path(data_dir).expanduser(), "--data-dir"
    elif os.environ.get(ENV):
        where, origin = Path(os.environ[ENV]).expanduser(), ENV
    else:
        raise UserError(f"Tiny ImageNet needs its folder; pass --data-dir or set {ENV} to the {FOLDER} folder "
                        "(wnids.txt, train/, val/).")
    for folder in (where, where / FOLDER):
        if (folder / "wnids.txt").is_file():
            return folder
    raise UserError(f"Tiny ImageNet was not found at {where} (from {origin}); pass --data-dir or set {ENV} to the "
                    f"{FOLDER} folder with wnids.txt, train/<wnid>/images/ and val/val_annotations.txt.")


def _listing(folder: Path) -> tuple[list, list, list]:
    """(wnids, [(path, label)] train, [(path, label)] val) in a fixed order."""
    wnids = [w.strip() for w in (folder / "wnids.txt").read_text().splitlines() if w.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise UserError(f"{folder / 'wnids.txt'} must list distinct class ids, one per line; replace it.")
    label = {w: i for i, w in enumerate(wnids)}
    train = []
    for wnid in wnids:
        files = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise UserError(f"class {wnid} has no images in {folder / 'train' / wnid / 'images'}; the copy is incomplete.")
        train += [(f, label[wnid]) for f in files]
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise UserError(f"{annotations} is missing; the validation labels are needed as the test set.")
    val = []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in label:
            raise UserError(f"{annotations} line {number} does not name an image and a class of wnids.txt: {line!r}.")
        val.append((folder / "val" / "images" / parts[0], label[parts[1]]))
    return wnids, train, sorted(val)


def _fingerprint(wnids, train, val) -> str:
    """What the cache was built from: every file's name, size and label (not its bytes)."""
    h = hashlib.sha256(json.dumps(wnids).encode())
    for path, y in train + val:
        try:
            size = path.stat().st_size
        except OSError:
            raise UserError(f"{path} is listed but missing; the copy of Tiny ImageNet is incomplete.") from None
        h.update(f"{path.parent.name}/{path.name}:{size}:{y}\n".encode())
    return h.hexdigest()


def _decode(items, what: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    x = np.empty((len(items), SIZE, SIZE, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(tqdm(items, desc=f"decode Tiny ImageNet {what}", disable=not progress,
                                       leave=False, unit="img", file=sys.stderr)):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(f"{path} is not a readable JPEG ({err}); replace it with a fresh copy.") from None
        if pixels.shape != (SIZE, SIZE, 3):
            raise UserError(f"{path} is {pixels.shape[1]}×{pixels.shape[0]}, not {SIZE}×{SIZE}; "
                            "this is not the standard tiny-imagenet-200 copy.")
        x[i] = pixels
    return x.transpose(0, 3, 1, 2), np.array([y for _, y in items], dtype=np.int64)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _cache_dirs(folder: Path) -> list[Path]:
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "certified-defences" / "tiny-imagenet"
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return [folder / CACHE, home / key]


def _read_cache(where: Path, fingerprint: str):
    """The cached arrays, or (None, why not)."""
    try:
        manifest = json.loads((where / "manifest.json").read_text())
    except (OSError, ValueError):
        return None, "no readable manifest"
    if manifest.get("format") != FORMAT or manifest.get("fingerprint") != fingerprint:
        return None, "it was built from other files"
    arrays = {}
    for name in ARRAYS:
        try:
            arrays[name] = np.load(where / f"{name}.npy", allow_pickle=False)
        except (OSError, ValueError) as err:
            return None, f"{name}.npy is unreadable ({err})"
        if _digest(arrays[name]) != manifest.get("sha256", {}).get(name):
            return None, f"{name}.npy does not match its checksum"
    return arrays, None


def _write_cache(where: Path, arrays: dict, fingerprint: str) -> bool:
    """Write every array and then the manifest, each atomically; False if `where` is not writable."""
    try:
        where.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            with tempfile.NamedTemporaryFile(dir=where, suffix=".npy.tmp", delete=False) as handle:
                np.save(handle, array, allow_pickle=False)
            os.replace(handle.name, where / f"{name}.npy")
        manifest = {"format": FORMAT, "fingerprint": fingerprint,
                    "sha256": {name: _digest(array) for name, array in arrays.items()}}
        with tempfile.NamedTemporaryFile("w", dir=where, suffix=".json.tmp", delete=False) as handle:
            json.dump(manifest, handle)
        os.replace(handle.name, where / "manifest.json")
        return True
    except OSError:
        return False


def load_arrays(data_dir=None, progress: bool = True) -> tuple[dict, Path, int]:
    """({x_train, y_train, x_test, y_test} as uint8 [N, 3, 64, 64] images and int64 labels, the folder,
    the number of classes)."""
    folder = find_folder(data_dir)
    wnids, train, val = _listing(folder)
    if len(wnids) != NUM_CLASSES:
        print(f"note: {folder} lists {len(wnids)} classes, not {NUM_CLASSES}; using them as they are.", file=sys.stderr)
    fingerprint = _fingerprint(wnids, train, val)
    reasons = []
    for where in _cache_dirs(folder):
        arrays, why = _read_cache(where, fingerprint)
        if arrays is not None:
            return arrays, folder, len(wnids)
        if (where / "manifest.json").exists():
            reasons.append(f"{where}: {why}")
    if reasons:
        print(f"note: rebuilding the Tiny ImageNet cache ({'; '.join(reasons)}).", file=sys.stderr)
    x_train, y_train = _decode(train, "train", progress)
    x_test, y_test = _decode(val, "val", progress)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if not any(_write_cache(where, arrays, fingerprint) for where in _cache_dirs(folder)):
        print(f"note: no writable place for the Tiny ImageNet cache ({', '.join(map(str, _cache_dirs(folder)))}); "
              "the next run decodes again.", file=sys.stderr)
    return arrays, folder, len(wnids)
