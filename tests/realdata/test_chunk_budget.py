"""The bounds' chunk budget: from the GPU's free memory on CUDA (mocked here), fixed on the CPU;
and the forward pass's batch chunks on the CPU, which must not change what it computes."""
from types import SimpleNamespace

import pytest
import torch

from realdata.relaxation.engine import DEFAULT_BUDGET, LIVE_CHUNKS, chunk_budget
from realdata.threats import L2, Linf


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


# --------------------------------------------------------------------------- the forward pass's batch chunks

def _chunk_setup(dtype=torch.float64):
    from tests.realdata.bounds_helpers import cnn

    model = cnn(5, channels=3, size=8, classes=5, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 3, 8, 8, generator=g, dtype=dtype)
    y = torch.randint(0, 5, (7,), generator=g)
    return model, x, y


def _coap(model, x, y, threat, proj, budget, monkeypatch):
    import realdata.relaxation.forward as forward
    from realdata.bounds import Bounds

    monkeypatch.setattr(forward, "CPU_CHUNK_BYTES", budget)
    model.zero_grad(set_to_none=True)
    bounds = Bounds(model, x, threat, "coap", proj=proj, direction="forward",
                    generator=torch.Generator().manual_seed(3))
    loss, _ = bounds.robust_loss(y)  # (loss, certified error)
    loss.backward()
    return bounds.preactivations(), loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("threat,proj", [(L2(0.6), 4), (Linf(0.1), 4), (Linf(0.05), None)])
def test_chunked_forward_pass_gives_the_unchunked_bounds_loss_and_gradients(threat, proj, monkeypatch):
    """Same draws, same bounds.  With projections, each chunk (like a batch) takes a layer's slack
    exactly when none of its examples has more than proj unstable neurons there; here every
    example has more in every layer, so the chunks choose as the whole batch does."""
    import realdata.relaxation.forward as forward

    model, x, y = _chunk_setup()
    seen = []
    real = forward._batch_chunks
    monkeypatch.setattr(forward, "_batch_chunks", lambda *a: seen.append(real(*a)) or seen[-1])
    whole = _coap(model, x, y, threat, proj, 2**40, monkeypatch)
    chunked = _coap(model, x, y, threat, proj, 1, monkeypatch)  # one example per chunk
    assert [len(s) for s in seen] == [1, 7]
    if proj is not None:
        for lo, up in whole[0]:
            assert (((lo < 0) & (up > 0)).flatten(1).sum(1) > proj).all()  # the premise above
    for (a, b), (c, d) in zip(whole[0], chunked[0]):
        assert torch.allclose(a, c, atol=1e-12) and torch.allclose(b, d, atol=1e-12)
    assert torch.allclose(whole[1], chunked[1], atol=1e-12)
    assert all(torch.allclose(p, q, atol=1e-12) for p, q in zip(whole[2], chunked[2]))


def test_cpu_chunks_cover_the_batch_evenly_within_the_budget(monkeypatch):
    import realdata.relaxation.forward as forward
    from realdata.relaxation.graph import parse

    model, x, _ = _chunk_setup(torch.float32)
    x = x.repeat(20, 1, 1, 1)  # 140 examples
    graph = parse(model, x)
    first = (-torch.ones(140, 8, 8, 8), torch.ones(140, 8, 8, 8))  # every first-layer neuron unstable
    costs = forward._Costs(1.0, 4)
    graph.root.count_forward(4.0, costs)
    per_example = costs.widest * 4
    budget = int(per_example * 30.5)  # room for 30 examples
    monkeypatch.setattr(forward, "CPU_CHUNK_BYTES", budget)
    chunks = forward._batch_chunks(graph, x, first, 4, 4)
    sizes = [min(s.stop, 140) - s.start for s in chunks]
    assert sum(sizes) == 140 and max(sizes) - min(sizes) <= 1 and len(chunks) == 5  # ⌈140/30⌉ = 5 of 28
    assert max(sizes) * per_example <= budget
    assert chunks[0].start == 0 and all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))


def test_gpu_batches_are_not_chunked():
    import realdata.relaxation.forward as forward

    x = SimpleNamespace(device=torch.device("cuda"), shape=(50, 3, 8, 8))
    assert forward._batch_chunks(None, x, None, 50, 50) == [slice(0, 50)]


def test_chunks_normalise_with_the_whole_batchs_statistics(monkeypatch):
    """A BatchNorm in training mode takes its statistics from the clean batch once (at parse
    time), so every chunk normalises with the whole batch's, not its own."""
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3),
                          nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6, 5)).double().train()
    _, x, y = _chunk_setup()
    whole = _coap(model, x, y, L2(0.3), None, 2**40, monkeypatch)
    chunked = _coap(model, x, y, L2(0.3), None, 1, monkeypatch)
    for (a, b), (c, d) in zip(whole[0], chunked[0]):
        assert torch.allclose(a, c, atol=1e-12) and torch.allclose(b, d, atol=1e-12)
    assert torch.allclose(whole[1], chunked[1], atol=1e-12)
    assert all(torch.allclose(p, q, atol=1e-12) for p, q in zip(whole[2], chunked[2]))
