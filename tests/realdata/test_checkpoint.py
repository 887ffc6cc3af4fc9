"""Checkpoints across devices and GPU counts, on a CPU with CUDA's state mocked.

A run's records and checkpoints are per device type (the type is in the hash); a resume onto
another device type stops with one sentence naming the flag that resumes it; a resume with
fewer visible GPUs restores only the training GPU's own state.
"""
import pytest
import torch

import realdata.train as train_mod
from realdata.checkpoint import load_checkpoint, restore_rng, rng_state
from realdata.errors import UserError
from realdata.recipes import make_config
from realdata.results import config_hash, make_record
from realdata.train import paths, train

CONFIG = make_config("digits", "st", eps=0.3, train_size=60, test_size=20, epochs=2, batch_size=30, width=8,
                     depth=1, eval_steps=2)
CUDA_STATE = torch.zeros(16, dtype=torch.uint8)  # what a CUDA generator's get_state() returns (16 bytes)


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA present with one visible GPU; every call into it is recorded (none is real)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": calls.append(("get", str(device))) or CUDA_STATE)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(("set", str(device))))

    def no_all(*args):
        raise RuntimeError("the state of every visible GPU is neither saved nor restored")
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", no_all)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", no_all)
    return calls


def _gens():
    return {"data": torch.Generator().manual_seed(1)}


def test_cpu_training_saves_and_restores_no_gpu_state(fake_cuda):
    state = rng_state(_gens(), torch.device("cpu"))
    assert "cuda" not in state
    restore_rng(state, _gens(), torch.device("cpu"))
    assert fake_cuda == []


def test_gpu_training_keeps_only_its_own_gpu_state(fake_cuda):
    # written on GPU 3 of a machine with 4; resumed where only one GPU is visible
    state = rng_state(_gens(), torch.device("cuda", 3))
    assert torch.equal(state["cuda"], CUDA_STATE)
    restore_rng(state, _gens(), torch.device("cuda", 0))
    assert fake_cuda == [("get", "cuda:3"), ("set", "cuda:0")]


def test_a_generator_state_of_another_device_type_is_one_sentence():
    with pytest.raises(UserError, match="'data' random stream.*delete it"):
        restore_rng({"data": CUDA_STATE, "torch": torch.get_rng_state()}, _gens(), torch.device("cpu"), "x.ckpt")


def test_records_and_hashes_carry_the_device_type(tmp_path):
    assert config_hash(CONFIG, "cpu") != config_hash(CONFIG, "cuda") != config_hash(CONFIG)
    assert paths(CONFIG, tmp_path, "cpu") != paths(CONFIG, tmp_path, "cuda:1") == paths(CONFIG, tmp_path, "cuda")
    record = make_record("train", "n", CONFIG, 0, {}, device_type="cuda")
    assert record["device_type"] == "cuda" and record["config_hash"] == config_hash(CONFIG, "cuda")


def _no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the run did work before refusing")
    monkeypatch.setattr(train_mod, "load_dataset", refuse)


def test_cpu_checkpoint_resumed_on_a_gpu_says_how(tmp_path, fake_cuda, monkeypatch):
    with monkeypatch.context() as cpu_only:
        cpu_only.setattr(torch.cuda, "is_available", lambda: False)
        assert train(CONFIG, out=tmp_path, device="cpu", progress=False, stop_after=1) is None
    ckpt = paths(CONFIG, tmp_path, "cpu")[1]
    assert torch.load(ckpt, weights_only=True)["device_type"] == "cpu"
    _no_work(monkeypatch)
    with pytest.raises(UserError, match=r"written by this run on cpu.*rerun with --device cpu.*start over on cuda"):
        train(CONFIG, out=tmp_path, device="cuda", progress=False)
    assert ckpt.exists() and fake_cuda == []


def test_gpu_checkpoint_resumed_on_the_cpu_says_how(tmp_path, monkeypatch):
    assert train(CONFIG, out=tmp_path, device="cpu", progress=False, stop_after=1) is None
    cpu_ckpt, gpu_ckpt = paths(CONFIG, tmp_path, "cpu")[1], paths(CONFIG, tmp_path, "cuda")[1]
    # what a GPU run leaves: its hash, its device type, a CUDA generator's state
    state = torch.load(cpu_ckpt, weights_only=True)
    state.update(config_hash=config_hash(CONFIG, "cuda"), device_type="cuda")
    state["rng"]["augment"] = CUDA_STATE
    torch.save(state, gpu_ckpt)
    cpu_ckpt.unlink()
    _no_work(monkeypatch)
    with pytest.raises(UserError, match=r"written by this run on cuda.*rerun with --device cuda.*start over on cpu"):
        train(CONFIG, out=tmp_path, device="cpu", progress=False)
    # and the file itself, loaded for the wrong device type, says the same
    with pytest.raises(UserError, match="rerun with --device cuda"):
        load_checkpoint(gpu_ckpt, config_hash(CONFIG, "cuda"), "cpu")
    assert gpu_ckpt.exists()
