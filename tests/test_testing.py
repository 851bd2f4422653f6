"""swimpy.testing: the in-memory driver shared by the engine tests and the simulator."""

from __future__ import annotations

from swimpy.core import JoinRequested, LeaveRequested
from swimpy.testing import Connections, VirtualCluster


def test_connections_number_uniquely_and_close_once() -> None:
    conns: Connections[str] = Connections()
    a, b = conns.open("dialer-a"), conns.open("dialer-b")
    assert a != b and len(conns) == 2
    assert conns.close(a) == "dialer-a"
    assert conns.close(a) is None  # an answer after the connection was closed is ignored
    assert len(conns) == 1


def test_virtual_cluster_serves_streams_until_every_connection_is_answered() -> None:
    h = VirtualCluster(encode=True)
    for n in "abc":
        h.add(n)
    for n in "bc":
        h.do(n, JoinRequested((h.addr("a"),)))
    h.run_until(2.0)
    assert all(h.view(n) == {m: "alive" for m in "abc"} for n in "abc")
    assert len(h._conns) == 0
    h.do("c", LeaveRequested())
    h.run_until(5.0)
    assert h.view("a")["c"] == "left"
