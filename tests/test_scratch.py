"""The engine's scratch arena (impl._scratch): temporaries of one call never overlap, the next
call reuses the same memory, growing keeps what a call already took, large requests stay apart."""

import torch

from impl import _scratch


def test_temporaries_of_one_call_are_apart_and_the_next_call_reuses_their_memory(monkeypatch):
    monkeypatch.setattr(_scratch, "_ARENAS", {})
    monkeypatch.setattr(_scratch, "_USED", {})
    like = torch.empty(0)
    _scratch.start()
    a = _scratch.take((2, 3), like).fill_(1)
    b = _scratch.take((4,), like).fill_(2)  # the arena grows: a stays where it was
    assert a.eq(1).all() and b.eq(2).all() and a.data_ptr() != b.data_ptr()
    _scratch.start()
    c, d = _scratch.take((2, 3), like), _scratch.take((4,), like)  # the grown arena holds both
    assert d.data_ptr() - c.data_ptr() == 6 * c.element_size()
    _scratch.start()
    assert _scratch.take((10,), like).data_ptr() == c.data_ptr()  # from the start again
    assert _scratch.take((3,), torch.empty(0, dtype=torch.float64)).dtype == torch.float64  # one arena per dtype


def test_a_request_above_the_limit_gets_memory_of_its_own(monkeypatch):
    monkeypatch.setattr(_scratch, "LIMIT", 8)
    monkeypatch.setattr(_scratch, "_ARENAS", {})
    monkeypatch.setattr(_scratch, "_USED", {})
    _scratch.start()
    big = _scratch.take((3, 3), torch.empty(0))
    assert big.shape == (3, 3) and not _scratch._ARENAS
