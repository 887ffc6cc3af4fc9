"""Tiny ImageNet on a small tiny-imagenet-200 folder of real JPEG files written here: labels from
wnids.txt and val_annotations.txt, pixels as Pillow decodes them, the cache (used, checked,
rebuilt when damaged or stale), and the errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from realdata import tiny_imagenet
from realdata.data import load_dataset
from realdata.errors import UserError

WNIDS = ("n01443537", "n01629819", "n01641577")


def _jpeg(path, seed, mode="RGB", size=64):
    rng = np.random.default_rng(seed)
    # smooth images survive JPEG well; the test compares with Pillow's own decoding anyway
    base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.BILINEAR).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=95)


@pytest.fixture
def tin(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    seed = 0
    for wnid in WNIDS:
        for k in range(3):
            _jpeg(root / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", seed, mode="L" if seed == 4 else "RGB")
            seed += 1
    lines = []
    for k, wnid in enumerate(("n01641577", "n01443537", "n01629819", "n01443537")):
        _jpeg(root / "val" / "images" / f"val_{k}.JPEG", 100 + k)
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def _pixels(path):
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).float() / 255


def test_loads_labels_and_pixels_and_caches_them(tin, monkeypatch):
    data = load_dataset("tiny-imagenet", data_dir=tin.parent)  # the parent folder works too
    assert data.num_classes == 3 and data.input_shape == (3, 64, 64) and data.box == (0.0, 1.0)
    assert data.x_train.shape == (9, 3, 64, 64) and data.x_train.dtype == torch.float32
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.y_test.tolist() == [2, 0, 1, 0]  # val_0 … val_3 by val_annotations.txt
    assert torch.equal(data.x_train[4], _pixels(tin / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_1.JPEG"))
    assert torch.equal(data.x_test[2], _pixels(tin / "val" / "images" / "val_2.JPEG"))
    assert (data.x_train[4][0] == data.x_train[4][2]).all()  # the greyscale JPEG, expanded to RGB
    assert (tin / ".decoded" / "manifest.json").is_file()

    # the second load reads the cache: decoding would now fail
    monkeypatch.setattr(tiny_imagenet, "_decode", lambda *a, **k: pytest.fail("decoded again"))
    monkeypatch.setenv("TINYIMAGENET_DIR", str(tin))
    again = load_dataset("tiny-imagenet", train_size=4, test_size=2, seed=1)
    assert again.x_train.shape == (4, 3, 64, 64) and again.x_train.dtype == torch.float32


def test_damaged_or_stale_cache_is_rebuilt(tin, capsys):
    first = load_dataset("tiny-imagenet", data_dir=tin)
    array = tin / ".decoded" / "x_train.npy"
    raw = bytearray(array.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte in the pixels: the file still loads
    array.write_bytes(bytes(raw))
    rebuilt = load_dataset("tiny-imagenet", data_dir=tin)
    assert "does not match its checksum" in capsys.readouterr().err
    assert torch.equal(rebuilt.x_train, first.x_train)
    (tin / ".decoded" / "y_test.npy").write_bytes(b"not numpy")
    assert torch.equal(load_dataset("tiny-imagenet", data_dir=tin).y_test, first.y_test)
    assert "y_test.npy is unreadable" in capsys.readouterr().err
    # another image in the folder: the cache no longer describes it
    _jpeg(tin / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_9.JPEG", 50)
    assert len(load_dataset("tiny-imagenet", data_dir=tin).y_train) == 10
    assert "built from other files" in capsys.readouterr().err


def test_unwritable_data_folder_caches_in_the_user_cache(tin, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tin / ".decoded").write_text("a file where the cache folder would go")  # root ignores permissions
    load_dataset("tiny-imagenet", data_dir=tin)
    assert list((tmp_path / "cache" / "certified-defences" / "tiny-imagenet").glob("*/manifest.json"))


def test_errors_name_the_fix(tin, tmp_path, monkeypatch):
    monkeypatch.delenv("TINYIMAGENET_DIR", raising=False)
    with pytest.raises(UserError, match="--data-dir or set TINYIMAGENET_DIR"):
        load_dataset("tiny-imagenet")
    with pytest.raises(UserError, match="not found at .* --data-dir or set TINYIMAGENET_DIR"):
        load_dataset("tiny-imagenet", data_dir=tmp_path / "elsewhere")
    _jpeg(tin / "train" / WNIDS[2] / "images" / "big.JPEG", 7, size=80)
    with pytest.raises(UserError, match="not 64×64"):
        load_dataset("tiny-imagenet", data_dir=tin)
    (tin / "train" / WNIDS[2] / "images" / "big.JPEG").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(UserError, match="not a readable JPEG"):
        load_dataset("tiny-imagenet", data_dir=tin)
    (tin / "train" / WNIDS[2] / "images" / "big.JPEG").unlink()
    (tin / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match="line 1 does not name"):
        load_dataset("tiny-imagenet", data_dir=tin)


@pytest.mark.slow
def test_a_method_trains_and_evaluates_on_it_from_the_command_line(tin, tmp_path, capsys):
    from realdata import train

    assert train.main(["--dataset", "tiny-imagenet", "--data-dir", str(tin), "--method", "mtl-ibp", "--epochs", "2",
                       "--train-size", "6", "--test-size", "4", "--batch-size", "3", "--eval-steps", "2",
                       "--width", "0.25", "--quiet", "--out", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("tiny-imagenet mtl-ibp linf eps=0.003922") and "(ibp; best of all" in line
