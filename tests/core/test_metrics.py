from __future__ import annotations

from swimpy.core.metrics import prometheus_text


def test_prometheus_text_marks_gauges_and_counters_with_labels() -> None:
    out = prometheus_text({"probes": 3, "health_score": 1, "dropped_bad_crc": 2},
                          labels={"node": 'we"b'})
    assert "# TYPE swimpy_probes_total counter\n" in out
    assert 'swimpy_probes_total{node="we\\"b"} 3\n' in out
    assert "# TYPE swimpy_health_score gauge\n" in out
    assert 'swimpy_health_score{node="we\\"b"} 1\n' in out
    assert "swimpy_dropped_bad_crc_total" in out


def test_prometheus_text_without_labels() -> None:
    assert prometheus_text({"members": 4}) == "# TYPE swimpy_members gauge\nswimpy_members 4\n"
