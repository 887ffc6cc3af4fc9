"""The bounds' chunk budget: from the GPU's free memory on CUDA (mocked here), fixed on the CPU."""
from types import SimpleNamespace

import torch

from realdata.relaxation.engine import DEFAULT_BUDGET, LIVE_CHUNKS, chunk_budget


def test_gpu_chunks_follow_free_memory(monkeypatch):
    asked = []
    free = 40 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (free, 141 * 2**30))
    x = SimpleNamespace(device=torch.device("cuda", 1), element_size=lambda: 4)
    assert chunk_budget(x) == free // (4 * LIVE_CHUNKS) > 50 * DEFAULT_BUDGET
    assert asked == [torch.device("cuda", 1)]
    free = 2**20  # nearly full: a floor, not zero-sized chunks
    assert chunk_budget(x) == DEFAULT_BUDGET // 16


def test_cpu_chunks_keep_the_cache_sized_budget(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: 1 / 0)
    assert chunk_budget(torch.zeros(2, 3)) == DEFAULT_BUDGET
