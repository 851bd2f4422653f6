"""A hypothesis state machine over a simulated cluster: the engine's invariants hold
whatever sequence of crashes, restarts, partitions, heals, loss and waiting happens, and
the cluster converges once the network is healthy again."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from swimpy.core import JoinRequested, State
from swimpy.sim import Simulation
from swimpy.sim.scenario import LatencySpec, Scenario
from swimpy.testing import assert_table_consistent

SETTLE_LIMIT = 600.0
#: how often the driver rejoins its seeds (Serf's retry_join does this until it succeeds)
REJOIN_INTERVAL = 20.0  # simulated seconds allowed to converge after the network heals


def _scenario(n: int) -> Scenario:
    return Scenario(
        name="stateful",
        source="<stateful>",
        nodes=n,
        profile="local",
        duration=1e9,
        config={
            # Serf's 30 s reconnect interval, shortened so healing takes little time.
            "reconnect_interval": "5s",
        },
        latency=LatencySpec("uniform", 0.0002, 0.002),
    )


class SimulatedCluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        #: (observer, observer's process epoch, subject) -> highest incarnation seen while
        #: the observer's table held the subject
        self.seen: dict[tuple[int, int, int], int] = {}
        self.partitioned = False
        self.loss = 0.0
        self.next_rejoin = REJOIN_INTERVAL

    def run_until(self, t: float) -> None:
        """Run the simulation to ``t``, rejoining the seeds every REJOIN_INTERVAL as a
        driver does (`serf agent -retry-join`, the runtime's ``rejoin_interval``):
        without it, two members that restarted while everyone they knew was down can
        never find each other (hypothesis found that), which is no fault of the protocol.
        Seeds are a driver's business; the engine only takes resolved addresses."""
        s = self.s
        while self.next_rejoin <= t:
            s.run_until(self.next_rejoin)
            for i in range(s.n):
                if s.running[i] and not s.leaving[i]:
                    seeds = tuple(a for j, a in enumerate(s.addrs) if j != i)
                    s.request(i, JoinRequested(seeds))
            self.next_rejoin += REJOIN_INTERVAL
        s.run_until(t)

    @initialize(n=st.integers(3, 5), seed=st.integers(0, 2**16))
    def start(self, n: int, seed: int) -> None:
        self.sim = Simulation(_scenario(n), seed)

    @property
    def s(self) -> Simulation:
        assert self.sim is not None
        return self.sim

    # ---------------------------------------------------------------- rules

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        up = [i for i in range(self.s.n) if self.s.running[i]]
        if len(up) <= 1:
            return
        self.s.crash(data.draw(st.sampled_from(up)))

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        up = [i for i in range(self.s.n) if self.s.running[i] and not self.s.leaving[i]]
        if len(up) <= 1:
            return
        self.s.leave(data.draw(st.sampled_from(up)))

    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        down = [i for i in range(self.s.n) if not self.s.running[i]]
        if not down:
            return
        self.s.restart(data.draw(st.sampled_from(down)))

    @rule(data=st.data())
    def partition(self, data: st.DataObject) -> None:
        n = self.s.n
        side = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1))
        one_way = data.draw(st.booleans())
        self.s.partition(sorted(side), symmetric=not one_way)
        self.partitioned = True

    @rule()
    def heal(self) -> None:
        self.s.heal()
        self.partitioned = False

    @rule(loss=st.sampled_from([0.0, 0.05, 0.3]))
    def set_loss(self, loss: float) -> None:
        self.s.set_loss(loss)
        self.loss = loss

    @rule(dt=st.floats(0.1, 30.0))
    def advance(self, dt: float) -> None:
        end = self.s.now + dt
        while self.s.now < end:
            self.run_until(min(end, self.s.now + 1.0))
            self.check_all()

    @precondition(lambda self: self.sim is not None)
    @rule()
    def settle(self) -> None:
        """Heal everything and wait: every running member must agree with reality."""
        self.s.heal()
        self.s.set_loss(0.0)
        self.partitioned = False
        self.loss = 0.0
        deadline = self.s.now + SETTLE_LIMIT
        while self.s.now < deadline and self.s.metrics.total != 0:
            self.run_until(self.s.now + 5.0)
            self.check_all()
        views = {
            self.s.names[o]: sorted(self.s.names[x] for x in self.s._view_of(o))
            for o in range(self.s.n)
            if self.s.running[o]
        }
        assert self.s.metrics.total == 0, f"not converged {SETTLE_LIMIT} s after healing: {views}"
        # and it stays converged
        self.run_until(self.s.now + 30.0)
        assert self.s.metrics.total == 0

    # ---------------------------------------------------------------- invariants

    def check_all(self) -> None:
        self.incarnations_never_decrease()
        self.no_member_holds_itself_failed()
        self.tables_are_consistent()
        self.broadcast_queues_are_bounded()

    @invariant()
    def incarnations_never_decrease(self) -> None:
        """Per (observer, subject), for as long as the observer's table holds the subject
        (an entry that was reaped may come back at a restarted member's incarnation 1)."""
        if self.sim is None:
            return
        s = self.s
        for o in range(s.n):
            node = s.nodes[o]
            if node is None or not s.running[o]:
                continue
            table = node.table()
            for subj, name in enumerate(s.names):
                key = (o, s.epoch[o], subj)
                m = table.get(name)
                if m is None:
                    self.seen.pop(key, None)
                    continue
                prev = self.seen.get(key, 0)
                assert m.incarnation >= prev, (
                    f"{s.names[o]} saw {name}'s incarnation drop {prev} -> {m.incarnation}"
                )
                self.seen[key] = m.incarnation

    @invariant()
    def no_member_holds_itself_failed(self) -> None:
        if self.sim is None:
            return
        s = self.s
        for i in range(s.n):
            node = s.nodes[i]
            if node is None or not s.running[i] or node.leaving:
                continue
            me = node.member(s.names[i])
            assert me is not None and me.state == State.ALIVE, (s.names[i], me)

    @invariant()
    def tables_are_consistent(self) -> None:
        if self.sim is None:
            return
        for node in self.s.nodes:
            if node is None:
                continue
            assert_table_consistent(node)

    @invariant()
    def broadcast_queues_are_bounded(self) -> None:
        if self.sim is None:
            return
        for node in self.s.nodes:
            if node is None:
                continue
            # memberlist's own broadcasts are named by member: at most one per member
            assert node.statistics().queue_depth <= self.s.n


TestSimulatedCluster = SimulatedCluster.TestCase
TestSimulatedCluster.settings = settings(
    max_examples=15,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
