"""The rotation store against a model: random interleavings of advances, previews, stream
takes, resets and dataset changes (hypothesis stateful)."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from itertools import product
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hybrid_audio_dagster.core.rotation.store import RotationStore
from tests.support.rotation import keys, make_store, seeds, snapshot


class RotationMachine(RuleBasedStateMachine):
    """Random interleavings of advances, previews, stream takes, resets and dataset changes."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.handed: dict[int, set] = defaultdict(set)
        self.membership: dict[int, set] = {}  # cycle -> its pairs, fixed when it starts
        self.dirty: set[int] = set()  # cycles changed or abandoned while current
        self.current: int | None = None
        self.expected: list | None = None  # the last preview, still to be handed out
        self.counter = 0

    def teardown(self) -> None:
        self._tmp.cleanup()

    def store(self) -> RotationStore:
        return make_store(self.root, self.names, self.devs, self.scripts, seed=self.seed)

    @initialize(n=st.integers(1, 5), m=st.integers(1, 5), s=st.integers(0, 2), seed=seeds)
    def setup(self, n, m, s, seed) -> None:
        self.names, self.devs, self.scripts, self.seed = set(keys("n", n)), set(keys("d", m)), set(keys("s", s)), seed

    @rule(k=st.integers(1, 9))
    def advance(self, k) -> None:
        items = self.store().advance(k).items
        for a in items:
            if self.current is not None and a.cycle != self.current:
                assert a.cycle == self.current + 1
                if self.current not in self.dirty:  # an undisturbed cycle was covered fully
                    assert self.handed[self.current] == self.membership[self.current]
            if a.cycle not in self.membership:
                self.membership[a.cycle] = set(product(self.names, self.devs))
            self.current = a.cycle
            assert a.pair in self.membership[a.cycle]  # new keys wait for the next cycle
            assert a.name in self.names and a.developer in self.devs  # removed keys are skipped
            assert a.pair not in self.handed[a.cycle], f"{a.pair} twice in cycle {a.cycle}"
            self.handed[a.cycle].add(a.pair)
        if self.expected is not None:
            m = min(k, len(self.expected))
            assert list(items[:m]) == self.expected[:m]
            self.expected = self.expected[m:] or None

    @rule(n=st.integers(0, 25))
    def preview(self, n) -> None:
        before = snapshot(self.root)
        self.expected = list(self.store().preview(n)) or None
        assert snapshot(self.root) == before

    @precondition(lambda self: self.scripts)
    @rule()
    def next_script(self) -> None:
        assert self.store().next_script() in self.scripts
        self.expected = None

    @rule(data=st.data())
    def change_datasets(self, data) -> None:
        self.counter += 1
        if data.draw(st.booleans()):
            self.names.add(f"x{self.counter}")
        if data.draw(st.booleans()) and len(self.devs) > 1:
            self.devs.discard(data.draw(st.sampled_from(sorted(self.devs))))
        if data.draw(st.booleans()) and len(self.names) > 1:
            self.names.discard(data.draw(st.sampled_from(sorted(self.names))))
        if self.current is not None:
            self.dirty.add(self.current)
        self.expected = None

    @rule()
    def reset(self) -> None:
        status = self.store().reset(reason="machine")
        if self.current is not None:
            self.dirty.add(self.current)
        self.membership[status.cycle] = set(product(self.names, self.devs))
        self.current = status.cycle
        self.expected = None

    @invariant()
    def status_is_consistent(self) -> None:
        if hasattr(self, "names"):
            status = self.store().status()
            assert 0 <= status.cursor <= status.cycle_length


RotationMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_rotation_state_machine = RotationMachine.TestCase
