"""harness.bench_timing: rounds that other processes disturbed are measured again, within a budget."""

import pytest

from harness import bench_timing


def fake_ticks(monkeypatch, others_per_round):
    """Other processes take ``others_per_round[i]`` ticks during round i (each round reads the
    ticks twice); the clock advances one second at every reading (a call: one second)."""
    readings = []
    busy = 0
    for others in others_per_round:
        readings += [(busy, 0), (busy + others, 0)]
        busy += others
    it = iter(readings)
    monkeypatch.setattr(bench_timing, "_ticks", lambda: next(it))
    clock = iter(float(i) for i in range(10_000))
    monkeypatch.setattr(bench_timing.time, "perf_counter", lambda: next(clock))


def test_disturbed_rounds_are_measured_again_and_set_aside(monkeypatch):
    bench_timing.ROUNDS.update(measured=0, disturbed=0)
    fake_ticks(monkeypatch, [0, 500, 0, 0])  # the second round disturbed: a fourth one is run
    calls = []
    ms = bench_timing.medians([lambda: calls.append("a"), lambda: calls.append("b")], repeats=3)
    assert calls == ["a", "b"] * (2 + 4)  # two warm-up rounds, then four timed ones
    assert bench_timing.ROUNDS == {"measured": 4, "disturbed": 1}
    assert ms == [pytest.approx(1000.0), pytest.approx(1000.0)]  # each call one fake second


def test_a_machine_never_quiet_gives_the_least_disturbed_rounds_after_the_budget(monkeypatch):
    bench_timing.ROUNDS.update(measured=0, disturbed=0)
    monkeypatch.setattr(bench_timing, "RETRIES", 2)
    fake_ticks(monkeypatch, [900, 300, 600, 400])
    assert len(bench_timing.medians([lambda: None], repeats=2)) == 1
    assert bench_timing.ROUNDS == {"measured": 4, "disturbed": 4}  # 2 x 2 rounds, no more


def test_ticks_are_read_from_proc():
    busy, own = bench_timing._ticks()
    assert busy >= own >= 0
    seconds, others = bench_timing.timed_round([lambda: sum(range(1000))])
    assert len(seconds) == 1 and seconds[0] > 0 and others >= 0
